/** Runs an S3 server (s3rver) in its own process for the benchmark: `tsx bench/s3-server.ts DIR PORT`. */
import S3rver from 's3rver';

const [directory, port] = process.argv.slice(2);
const server = new S3rver({ port: Number(port), address: '127.0.0.1', directory: directory!, silent: true, configureBuckets: [{ name: 'nondivy' }] });
await server.run();
process.stdout.write('ready\n');
process.on('SIGTERM', () => void server.close().then(() => process.exit(0)));
