/**
 * RFC 5734 framing: every EPP data unit is preceded by a 4-byte big-endian length that counts itself
 * (so the smallest frame is 5 bytes). A reader gathers frames from chunks however TCP splits or joins them.
 */

export const HEADER_BYTES = 4;

export function frame(xml: string): Buffer {
  const body = Buffer.from(xml, 'utf8');
  const out = Buffer.allocUnsafe(HEADER_BYTES + body.length);
  out.writeUInt32BE(HEADER_BYTES + body.length, 0);
  body.copy(out, HEADER_BYTES);
  return out;
}

export class FrameError extends Error {}

export class FrameReader {
  private buffer: Buffer = Buffer.alloc(0);

  constructor(private readonly maxFrameBytes: number) {}

  /** The complete frames (as text) that the chunk finishes; throws FrameError on a length out of bounds. */
  push(chunk: Buffer): string[] {
    this.buffer = this.buffer.length ? Buffer.concat([this.buffer, chunk]) : chunk;
    const frames: string[] = [];
    while (this.buffer.length >= HEADER_BYTES) {
      const total = this.buffer.readUInt32BE(0);
      if (total <= HEADER_BYTES) throw new FrameError(`A frame announced ${total} bytes, less than its own header.`);
      if (total > this.maxFrameBytes) throw new FrameError(`A frame announced ${total} bytes, more than the ${this.maxFrameBytes} allowed.`);
      if (this.buffer.length < total) break;
      frames.push(this.buffer.subarray(HEADER_BYTES, total).toString('utf8'));
      this.buffer = this.buffer.subarray(total);
    }
    return frames;
  }

  /** Bytes received that do not yet make a whole frame. */
  get pendingBytes(): number {
    return this.buffer.length;
  }
}
