import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';

/**
 * A multipart/form-data body streamed from disk: the text fields first, then the file part. Its
 * length is known in advance (sent as Content-Length), so nothing is buffered beyond one chunk.
 */
export interface MultipartUpload {
  contentType: string;
  length: number;
  /** The body; `onBytes` sees the file's bytes as they are read. */
  stream(onBytes: (n: number) => void): ReadableStream<Uint8Array>;
}

/** A quoted-string parameter value (backslash escapes), with line breaks removed. */
function quoted(value: string): string {
  return `"${value.replace(/[\r\n]+/g, ' ').replace(/["\\]/g, '\\$&')}"`;
}

export function multipartUpload(fields: Record<string, string | undefined>, file: { path: string; name: string; size: number }): MultipartUpload {
  const boundary = `----nondivy${randomBytes(16).toString('hex')}`;
  const heads: Buffer[] = [];
  for (const [name, value] of Object.entries(fields)) {
    if (value === undefined) continue;
    heads.push(Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name=${quoted(name)}\r\n\r\n${value}\r\n`));
  }
  heads.push(
    Buffer.from(
      `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename=${quoted(file.name)}\r\nContent-Type: application/octet-stream\r\n\r\n`,
    ),
  );
  const tail = Buffer.from(`\r\n--${boundary}--\r\n`);
  const length = heads.reduce((n, h) => n + h.length, 0) + file.size + tail.length;

  async function* body(onBytes: (n: number) => void): AsyncGenerator<Uint8Array> {
    yield* heads;
    let sent = 0;
    for await (const chunk of createReadStream(file.path, { highWaterMark: 256 * 1024 })) {
      sent += (chunk as Buffer).length;
      if (sent > file.size) throw new Error(`${file.path} grew while being uploaded`);
      onBytes((chunk as Buffer).length);
      yield chunk as Buffer;
    }
    if (sent !== file.size) throw new Error(`${file.path} shrank while being uploaded`);
    yield tail;
  }

  return {
    contentType: `multipart/form-data; boundary=${boundary}`,
    length,
    stream(onBytes) {
      const it = body(onBytes);
      return new ReadableStream<Uint8Array>({
        async pull(controller) {
          const next = await it.next();
          if (next.done) controller.close();
          else controller.enqueue(next.value);
        },
        async cancel() {
          await it.return(undefined);
        },
      });
    },
  };
}
