// A TLS Mosquitto for tests: a CA, a server certificate for 127.0.0.1/localhost and a client
// certificate made with the openssl CLI, a password file made with mosquitto_passwd, and the
// listener that requires both a client certificate and a password.
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Mosquitto } from './mosquitto.ts';

/** Writes ca.pem, server.pem/.key, client.pem/.key, other.pem (a CA that signed nothing) and passwd into dir. */
export function makeCertificates(dir: string, client: { cn: string; user: string; password: string }): void {
  const ssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  const sign = (name: string, cn: string, ext: string) => {
    writeFileSync(join(dir, `${name}.ext`), ext);
    ssl('req', '-newkey', 'rsa:2048', '-nodes', '-subj', `/CN=${cn}`, '-keyout', `${name}.key`, '-out', `${name}.csr`);
    ssl(
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      'ca.pem',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-days',
      '2',
      '-extfile',
      `${name}.ext`,
      '-out',
      `${name}.pem`,
    );
  };
  ssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=presence test CA', '-keyout', 'ca.key', '-out', 'ca.pem');
  sign('server', 'localhost', 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n');
  sign('client', client.cn, 'extendedKeyUsage=clientAuth\n');
  // Another CA, to show that a wrong CA is caught.
  ssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=other CA', '-keyout', 'other.key', '-out', 'other.pem');
  execFileSync('mosquitto_passwd', ['-b', '-c', join(dir, 'passwd'), client.user, client.password], { stdio: 'pipe' });
}

/** A Mosquitto whose only listener needs TLS with a client certificate and a password. */
export function tlsMosquitto(): Mosquitto {
  return new Mosquitto({
    listenerConfig: (port, dir) =>
      [
        `listener ${port} 127.0.0.1`,
        `cafile ${join(dir, 'ca.pem')}`,
        `certfile ${join(dir, 'server.pem')}`,
        `keyfile ${join(dir, 'server.key')}`,
        'require_certificate true',
        'allow_anonymous false',
        `password_file ${join(dir, 'passwd')}`,
      ].join('\n'),
  });
}
