/**
 * Whether host ports are free, tried by binding them for a moment (TCP listen, UDP bind). A port
 * another container publishes is held by Docker's proxy and shows as taken; with the userland
 * proxy off (iptables only) such a conflict is only found at the start.
 */
import { createSocket } from 'node:dgram';
import { createServer } from 'node:net';

function tcpFree(ip: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', (e: NodeJS.ErrnoException) => resolve(e.code !== 'EADDRINUSE' && e.code !== 'EACCES'));
    srv.listen({ host: ip, port, exclusive: true }, () => srv.close(() => resolve(true)));
  });
}

function udpFree(ip: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = createSocket(ip.includes(':') ? 'udp6' : 'udp4');
    sock.once('error', (e: NodeJS.ErrnoException) => {
      sock.close();
      resolve(e.code !== 'EADDRINUSE' && e.code !== 'EACCES');
    });
    sock.bind({ address: ip, port, exclusive: true }, () => sock.close(() => resolve(true)));
  });
}

/** The first of `ports` that is taken on this host, or null. Other bind errors count as free. */
export async function firstTakenPort(
  ports: readonly { hostIp: string; hostPort: number; proto: 'tcp' | 'udp' }[],
): Promise<{ hostIp: string; hostPort: number; proto: 'tcp' | 'udp' } | null> {
  for (const p of ports) {
    const free =
      p.proto === 'tcp' ? await tcpFree(p.hostIp, p.hostPort) : await udpFree(p.hostIp, p.hostPort);
    if (!free) return p;
  }
  return null;
}
