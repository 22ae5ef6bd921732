// JSON.parse keeps the last of two equal keys without a word: this finds them. A small scanner over
// the JSON text that records the keys of every object and reports any key an object has twice.
export function duplicateKeys(text: string): string[] {
  const dups: string[] = [];
  let i = 0;
  const ws = () => {
    while (i < text.length && /\s/.test(text[i])) i++;
  };
  const str = (): string => {
    const start = i;
    i++; // opening quote
    while (text[i] !== '"') i += text[i] === '\\' ? 2 : 1;
    i++;
    return JSON.parse(text.slice(start, i)) as string;
  };
  const value = (path: string): void => {
    ws();
    const c = text[i];
    if (c === '{') {
      i++;
      const seen = new Set<string>();
      ws();
      if (text[i] === '}') return void i++;
      for (;;) {
        ws();
        const k = str();
        if (seen.has(k)) dups.push(`${path}${k}`);
        seen.add(k);
        ws();
        i++; // colon
        value(`${path}${k}.`);
        ws();
        if (text[i++] === '}') return;
      }
    }
    if (c === '[') {
      i++;
      ws();
      if (text[i] === ']') return void i++;
      for (let n = 0; ; n++) {
        value(`${path}${n}.`);
        ws();
        if (text[i++] === ']') return;
      }
    }
    if (c === '"') return void str();
    while (i < text.length && !/[,}\]\s]/.test(text[i])) i++;
  };
  JSON.parse(text); // throws on anything that is not JSON
  value('');
  return dups;
}
