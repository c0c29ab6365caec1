// www/imagesize.js — an image file's pixel size read from its header, without decoding it (a small
// PNG of 16k × 16k pixels decodes to a gigabyte): PNG (IHDR), GIF (logical screen), WebP (VP8,
// VP8L, VP8X), BMP (BITMAPINFOHEADER) and JPEG (the first SOFn marker, found by walking the
// segments, which may sit after large EXIF/ICC segments: read a few bytes per segment).
// imageSize(file) → {format, width, height}, or null when the header is none of these.

const u16be = (b, i) => (b[i] << 8) | b[i + 1];
const u16le = (b, i) => b[i] | (b[i + 1] << 8);
const u24le = (b, i) => b[i] | (b[i + 1] << 8) | (b[i + 2] << 16);
const u32be = (b, i) => ((b[i] << 24) >>> 0) + ((b[i + 1] << 16) | (b[i + 2] << 8) | b[i + 3]);
const ascii = (b, i, n) => String.fromCharCode(...b.subarray(i, i + n));

async function bytes(file, start, end) {
  return new Uint8Array(await file.slice(start, end).arrayBuffer());
}

function fromHead(b) {
  if (b.length >= 24 && b[0] === 0x89 && ascii(b, 1, 3) === 'PNG' && ascii(b, 12, 4) === 'IHDR') {
    return { format: 'PNG', width: u32be(b, 16), height: u32be(b, 20) };
  }
  if (b.length >= 10 && (ascii(b, 0, 6) === 'GIF87a' || ascii(b, 0, 6) === 'GIF89a')) {
    return { format: 'GIF', width: u16le(b, 6), height: u16le(b, 8) };
  }
  if (b.length >= 30 && ascii(b, 0, 4) === 'RIFF' && ascii(b, 8, 4) === 'WEBP') {
    const chunk = ascii(b, 12, 4);
    if (chunk === 'VP8X') return { format: 'WebP', width: u24le(b, 24) + 1, height: u24le(b, 27) + 1 };
    if (chunk === 'VP8 ') return { format: 'WebP', width: u16le(b, 26) & 0x3fff, height: u16le(b, 28) & 0x3fff };
    if (chunk === 'VP8L' && b[20] === 0x2f) {
      const bits = (b[21] | (b[22] << 8) | (b[23] << 16) | (b[24] << 24)) >>> 0;
      return { format: 'WebP', width: (bits & 0x3fff) + 1, height: ((bits >>> 14) & 0x3fff) + 1 };
    }
    return null;
  }
  if (b.length >= 26 && ascii(b, 0, 2) === 'BM') {
    const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
    return { format: 'BMP', width: Math.abs(dv.getInt32(18, true)), height: Math.abs(dv.getInt32(22, true)) };
  }
  return null;
}

// Start-of-frame markers (baseline, progressive, lossless, arithmetic): C0–CF but C4 (DHT), C8
// (JPG) and CC (DAC).
const isSof = (m) => m >= 0xc0 && m <= 0xcf && m !== 0xc4 && m !== 0xc8 && m !== 0xcc;

async function jpegSize(file) {
  let pos = 2;
  for (let segments = 0; segments < 10000 && pos + 4 <= file.size; segments++) {
    const b = await bytes(file, pos, pos + 9);
    if (b[0] !== 0xff) return null;
    const m = b[1];
    if (m === 0xff) { pos += 1; continue; } // fill byte
    if (m === 0x01 || (m >= 0xd0 && m <= 0xd7)) { pos += 2; continue; } // no length
    if (m === 0xd9 || m === 0xda) return null; // end of image / start of scan before any frame
    if (isSof(m) && b.length >= 9) return { format: 'JPEG', width: u16be(b, 7), height: u16be(b, 5) };
    pos += 2 + u16be(b, 2);
  }
  return null;
}

/** {format, width, height} of `file` (a Blob) from its header, or null (not PNG, GIF, WebP, BMP
 *  or JPEG, or no size found). Reads 32 bytes, and for JPEG 9 bytes per segment up to the frame. */
export async function imageSize(file) {
  const head = await bytes(file, 0, 32);
  if (head[0] === 0xff && head[1] === 0xd8) return jpegSize(file);
  return fromHead(head);
}
