import * as http from 'node:http';
import * as net from 'node:net';
import { nodeHttpParser } from './quick/originConnection';

/** The most one read from an origin socket takes (a read returns what the kernel has queued, up to this). */
export const ORIGIN_READ_BYTES = 1024 * 1024;

/**
 * Whether Node's HTTP parser hands body chunks out as copies of its input, as Node 20-24's does
 * (node_http_parser.cc on_body: Buffer::Copy): only then may a socket's read buffer be reused as
 * soon as the parser has returned. Tried once on a small response; false on any surprise.
 */
export function parserCopiesBodies(binding = nodeHttpParser()): boolean {
  if (!binding) return false;
  try {
    const parser = new binding();
    parser.initialize(binding.RESPONSE, {}, 16 * 1024, binding.kLenientNone);
    const chunks: Buffer[] = [];
    parser[binding.kOnMessageBegin] = () => 0;
    parser[binding.kOnHeaders] = () => 0;
    parser[binding.kOnHeadersComplete] = () => 0;
    parser[binding.kOnBody] = (chunk: Buffer) => {
      chunks.push(chunk);
    };
    parser[binding.kOnMessageComplete] = () => 0;
    const input = Buffer.allocUnsafeSlow(64);
    const n = input.write('HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nbody', 'latin1');
    parser.execute(input.subarray(0, n));
    parser.close();
    return chunks.length > 0 && Buffer.concat(chunks).toString('latin1') === 'body' && chunks.every((c) => c.buffer !== input.buffer);
  } catch {
    return false;
  }
}

// Found on first use, not at load: quick/originConnection.ts (the parser's loader) imports this module too.
let copies: boolean | undefined;
const parserCopies = (): boolean => (copies ??= parserCopiesBodies());
let shared: Buffer | null = null;

/**
 * net's `onread` option for an origin socket whose every read `consume` parses at once (it must
 * keep no reference to the bytes it is given), or undefined where the parser does not copy
 * bodies out (the socket then reads as Node's do). The quick pass-through's connections use it
 * as the agent below does.
 */
export function sharedReads(consume: (bytes: Buffer) => void): net.OnReadOpts | undefined {
  if (!parserCopies()) return undefined;
  shared ??= Buffer.allocUnsafeSlow(ORIGIN_READ_BYTES);
  return {
    buffer: shared,
    callback: (nread: number, buf: Uint8Array): boolean => {
      consume(Buffer.from(buf.buffer, buf.byteOffset, nread));
      return true;
    },
  };
}

/**
 * The http.Agent for plain-HTTP origins: its sockets read into one buffer the whole process
 * shares (net's `onread`), up to 1 MiB a read, and hand each read to Node's HTTP client as a
 * 'data' event, which parses it at once. A socket read otherwise allocated a fresh 64 KiB buffer
 * for each read, which the parser then copied again: on a 100 MiB miss 3,200 buffers of
 * external memory and a full garbage collection every 10 MiB or so, besides 1,600 parser and
 * stream callbacks. One buffer serves every socket because a read is parsed (headers saved, the
 * body copied out) before the event loop reads any other socket.
 *
 * Where the parser does not copy bodies (see parserCopiesBodies), this is Node's own agent.
 * An idle pooled socket that receives bytes is closed (nobody would parse them: Node's client
 * does not reuse such a connection either).
 */
export class OriginHttpAgent extends http.Agent {
  static get sharesReads(): boolean {
    return parserCopies();
  }

  // Node's agent takes the socket returned (its callback would be a 'connect' listener to net).
  override createConnection(options: http.ClientRequestArgs): net.Socket {
    let socket: net.Socket | null = null;
    const onread = sharedReads((bytes) => {
      const s = socket!;
      if (s.listenerCount('data') === 0) s.destroy();
      else s.emit('data', bytes);
    });
    socket = net.createConnection((onread ? { ...options, onread } : options) as net.NetConnectOpts);
    return socket;
  }
}
