#!/usr/bin/env node
// mockttp (HTTP Toolkit's proxy engine) as an intercepting forward proxy for the benchmark:
// its own CA (written to CA_DIR/ca.pem for the client to trust), every request passed through
// to the origin. The origin's throwaway CA is trusted through NODE_EXTRA_CA_CERTS (set by the
// runner): passThrough's `additionalTrustedCAs` hands Node's ~140 roots plus it to every upstream
// request as `ca`, which made a new TLS context per upstream connection and cost mockttp a third
// of its CPU (profiled); the environment variable is the cheaper way, so the fairer one.
//
//   NODE_EXTRA_CA_CERTS=ORIGIN_CA_PEM node bench/peers/mockttp-proxy.mjs PORT CA_DIR
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as mockttp from 'mockttp';

const [port, caDir] = process.argv.slice(2);
const ca = await mockttp.generateCACertificate({ subject: { commonName: 'mockttp bench CA' } });
mkdirSync(caDir, { recursive: true });
writeFileSync(join(caDir, 'ca.pem'), ca.cert);
const server = mockttp.getLocal({ https: { cert: ca.cert, key: ca.key }, http2: false, recordTraffic: false });
await server.forAnyRequest().thenPassThrough();
await server.start(Number(port));
console.log(`mockttp listening on 127.0.0.1:${server.port}`);
// Note: mockttp's start() listens on every interface (it takes no host); the runner stops it after its phase.
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => server.stop().finally(() => process.exit(0)));
