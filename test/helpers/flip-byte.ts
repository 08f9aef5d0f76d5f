/**
 * Damaging a file in place, as a bad sector or a stray write would: the byte at `offset`
 * is inverted, nothing else changes (length and mtime aside).
 */
import { open } from 'node:fs/promises'

/** Inverts the byte at `offset` of the file at `path`. */
export async function flipByte (path: string, offset: number): Promise<void> {
  const fh = await open(path, 'r+')
  try {
    const byte = Buffer.alloc(1)
    await fh.read(byte, 0, 1, offset)
    byte[0] = (byte[0] ?? 0) ^ 0xff
    await fh.write(byte, 0, 1, offset)
  } finally {
    await fh.close()
  }
}
