/**
 * Test files for the mod manager: jars (zip, by yazl) with the metadata files real loaders read,
 * and a minimal PE32 DLL carrying a VS_VERSIONINFO resource laid out as the PE/COFF spec and
 * Microsoft's VERSIONINFO docs describe (root → RT_VERSION → name → language → data entry).
 */
import yazl from 'yazl';

export async function jar(files: Record<string, string | Buffer>): Promise<Buffer> {
  const z = new yazl.ZipFile();
  for (const [name, body] of Object.entries(files)) z.addBuffer(Buffer.from(body), name);
  z.end();
  const chunks: Buffer[] = [];
  for await (const c of z.outputStream as AsyncIterable<Buffer>) chunks.push(c);
  return Buffer.concat(chunks);
}

const pad4 = (b: Buffer) => (b.length % 4 === 0 ? b : Buffer.concat([b, Buffer.alloc(4 - (b.length % 4))]));
const wz = (s: string) => Buffer.from(`${s}\0`, 'utf16le');

/** One version-info node: header, key, padding, value, then its children (each 4-aligned). */
function node(key: string, value: Buffer | string | null, children: Buffer[] = []): Buffer {
  const text = typeof value === 'string';
  const v = value === null ? Buffer.alloc(0) : text ? wz(value) : value;
  const keyPart = pad4(Buffer.concat([Buffer.alloc(6), wz(key)]));
  const out = Buffer.concat([keyPart, children.length > 0 ? pad4(v) : v, ...children.map(pad4)]);
  out.writeUInt16LE(out.length, 0);
  out.writeUInt16LE(text ? v.length / 2 : v.length, 2);
  out.writeUInt16LE(text ? 1 : 0, 4);
  return out;
}

export function versionInfo(
  strings: Record<string, string>,
  version: [number, number, number, number],
): Buffer {
  const fixed = Buffer.alloc(52);
  fixed.writeUInt32LE(0xfeef04bd, 0);
  fixed.writeUInt32LE(0x00010000, 4);
  fixed.writeUInt32LE(((version[0] << 16) | version[1]) >>> 0, 8);
  fixed.writeUInt32LE(((version[2] << 16) | version[3]) >>> 0, 12);
  fixed.writeUInt32LE(((version[0] << 16) | version[1]) >>> 0, 16);
  fixed.writeUInt32LE(((version[2] << 16) | version[3]) >>> 0, 20);
  const table = node(
    '040904b0',
    null,
    Object.entries(strings).map(([k, v]) => node(k, v)),
  );
  const sfi = node('StringFileInfo', null, [table]);
  return node('VS_VERSION_INFO', fixed, [sfi]);
}

/** A PE32 DLL whose only section is `.rsrc` holding `info` as its RT_VERSION resource. */
export function dllWithVersion(info: Buffer): Buffer {
  const SECTION_RVA = 0x1000;
  const RAW_AT = 0x200;
  const rsrc = Buffer.alloc(0x58 + info.length);
  const dir = (at: number, id: number, target: number) => {
    rsrc.writeUInt16LE(0, at + 12); // named entries
    rsrc.writeUInt16LE(1, at + 14); // id entries
    rsrc.writeUInt32LE(id, at + 16);
    rsrc.writeUInt32LE(target >>> 0, at + 20);
  };
  dir(0x00, 16, 0x80000000 | 0x18); // RT_VERSION
  dir(0x18, 1, 0x80000000 | 0x30); // name 1
  dir(0x30, 0x409, 0x48); // language → data entry
  rsrc.writeUInt32LE(SECTION_RVA + 0x58, 0x48);
  rsrc.writeUInt32LE(info.length, 0x4c);
  info.copy(rsrc, 0x58);

  const file = Buffer.alloc(RAW_AT + rsrc.length);
  file.write('MZ', 0, 'latin1');
  file.writeUInt32LE(0x40, 0x3c);
  const pe = 0x40;
  file.write('PE\0\0', pe, 'latin1');
  file.writeUInt16LE(0x14c, pe + 4); // i386
  file.writeUInt16LE(1, pe + 6); // sections
  file.writeUInt16LE(224, pe + 20); // optional header size (PE32)
  file.writeUInt16LE(0x2102, pe + 22); // DLL
  const opt = pe + 24;
  file.writeUInt16LE(0x10b, opt);
  file.writeUInt32LE(16, opt + 92); // NumberOfRvaAndSizes
  file.writeUInt32LE(SECTION_RVA, opt + 96 + 2 * 8);
  file.writeUInt32LE(rsrc.length, opt + 96 + 2 * 8 + 4);
  const sec = opt + 224;
  file.write('.rsrc', sec, 'latin1');
  file.writeUInt32LE(rsrc.length, sec + 8);
  file.writeUInt32LE(SECTION_RVA, sec + 12);
  file.writeUInt32LE(rsrc.length, sec + 16);
  file.writeUInt32LE(RAW_AT, sec + 20);
  rsrc.copy(file, RAW_AT);
  return file;
}
