import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HashingFileSink } from '../server/hashingFileSink.js';

/** Chunks of uneven sizes: tiny ones, ones that straddle a 1 MB batch, ones bigger than several batches. */
function chunksOf(data: Buffer): Buffer[] {
  const sizes = [1, 7, 65_536, 1_048_575, 2, 3_500_000, 65_536, 1_048_576, 9_000_000];
  const out: Buffer[] = [];
  for (let at = 0, i = 0; at < data.length; i++) {
    const n = Math.min(sizes[i % sizes.length]!, data.length - at);
    out.push(data.subarray(at, at + n));
    at += n;
  }
  return out;
}

describe('HashingFileSink: a file and its sha256 written off the event loop', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'stratus-sink-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('stores exactly the bytes it is given, in order, and their sha256, whatever the chunk sizes', async () => {
    const data = randomBytes(23 * 1024 * 1024 + 12_345);
    const path = join(dir, 'uneven');
    const sink = new HashingFileSink(path);
    await pipeline(Readable.from(chunksOf(data)), sink);
    expect(sink.bytes).toBe(data.length);
    expect(sink.checksum).toBe(createHash('sha256').update(data).digest('hex'));
    expect(readFileSync(path).equals(data)).toBe(true);
  });

  it('an empty body is an empty file with the sha256 of nothing', async () => {
    const path = join(dir, 'empty');
    const sink = new HashingFileSink(path);
    await pipeline(Readable.from([]), sink);
    expect(sink.bytes).toBe(0);
    expect(sink.checksum).toBe(createHash('sha256').digest('hex'));
    expect(readFileSync(path).length).toBe(0);
  });

  it('never writes over a file that is already there', async () => {
    const path = join(dir, 'taken');
    writeFileSync(path, 'keep me');
    await expect(pipeline(Readable.from([Buffer.from('other bytes')]), new HashingFileSink(path))).rejects.toThrow(/EEXIST/);
    expect(readFileSync(path, 'utf8')).toBe('keep me');
  });

  it('a source that fails half way fails the pipeline and has no checksum', async () => {
    const path = join(dir, 'broken');
    const sink = new HashingFileSink(path);
    async function* broken() {
      yield randomBytes(3 * 1024 * 1024);
      throw new Error('the client went away');
    }
    await expect(pipeline(Readable.from(broken()), sink)).rejects.toThrow('the client went away');
    expect(sink.checksum).toBeUndefined();
    expect(sink.destroyed).toBe(true);
  });

  // A full disk is a real one: a 1 MiB tmpfs (the suite runs as root, as the networking tests need).
  it('a disk that fills up fails the pipeline with the error, instead of a checksum of bytes not stored', async () => {
    const small = join(dir, 'small');
    execFileSync('mkdir', ['-p', small]);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', small]);
    try {
      const sink = new HashingFileSink(join(small, 'too-big'));
      await expect(pipeline(Readable.from(chunksOf(randomBytes(4 * 1024 * 1024))), sink)).rejects.toThrow(/ENOSPC|no space/i);
      expect(sink.checksum).toBeUndefined();
    } finally {
      execFileSync('umount', [small]);
    }
  });
});
