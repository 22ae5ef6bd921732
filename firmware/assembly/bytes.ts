// Little helpers for reading frame bytes. WebAssembly memory is little-endian and allows unaligned
// loads; callers check bounds before every read.

@inline export function u8at(p: usize): u32 {
  return <u32>load<u8>(p);
}

@inline export function le16(p: usize): u32 {
  return <u32>load<u16>(p);
}

@inline export function le32(p: usize): u32 {
  return load<u32>(p);
}

@inline export function be16(p: usize): u32 {
  return <u32>bswap<u16>(load<u16>(p));
}

@inline export function be32(p: usize): u32 {
  return bswap<u32>(load<u32>(p));
}

/** Rounds offset up to a multiple of align (a power of two). */
@inline export function alignUp(offset: u32, align: u32): u32 {
  return (offset + align - 1) & ~(align - 1);
}
