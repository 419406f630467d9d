/**
 * The commands that start a node's Agent, one per way it is deployed, with the Panel's
 * configured public URL (PANEL_URL) — never a browser's origin, which is wrong on another
 * machine. A plain http:// URL off loopback gets AGENT_ALLOW_INSECURE=1 (the Agent refuses it
 * otherwise) and is flagged so the dialog can say why.
 */
import { z } from 'zod';

export const AGENT_DATA_DIR = '/var/lib/ctrl-alt-play/agent';

export const AgentCommands = z.object({
  /** the URL the commands carry (PANEL_URL, or the default when it is not set) */
  panelUrl: z.string(),
  /** false: PANEL_URL is not set and the URL is this Panel's default (localhost) */
  panelUrlConfigured: z.boolean(),
  /** the URL is plain http:// to a host that is not loopback: AGENT_ALLOW_INSECURE=1 is added */
  insecure: z.boolean(),
  /** the single executable (dist/bin/ctrl-alt-play-agent-linux-<arch>) */
  binary: z.string(),
  /** the image (ctrl-alt-play-agent), as seed 001 runs it */
  docker: z.string(),
  /** deploy/systemd/ctrl-alt-play-agent.service with its environment file */
  systemd: z.string(),
  /** from a clone of the repository */
  npx: z.string(),
});
export type AgentCommands = z.infer<typeof AgentCommands>;

function isLoopbackHost(url: string): boolean {
  const host = new URL(url).hostname.replace(/^\[|\]$/g, '');
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

export function agentCommands(opts: {
  panelUrl: string;
  configured: boolean;
  nodeId: string;
  /** the secret, or null for a placeholder (it is shown once, when the node is made) */
  secret: string | null;
}): AgentCommands {
  const secret = opts.secret ?? '<the secret shown when the node was added>';
  const insecure = new URL(opts.panelUrl).protocol === 'http:' && !isLoopbackHost(opts.panelUrl);
  const env: [string, string][] = [
    ['PANEL_URL', opts.panelUrl],
    ['NODE_ID', opts.nodeId],
    ['AGENT_SECRET', secret],
    ...(insecure ? ([['AGENT_ALLOW_INSECURE', '1']] as [string, string][]) : []),
  ];
  const assign = env.map(([k, v]) => `${k}=${v}`);
  return {
    panelUrl: opts.panelUrl,
    panelUrlConfigured: opts.configured,
    insecure,
    binary: `${assign.join(' ')} AGENT_DATA_DIR=${AGENT_DATA_DIR} ./ctrl-alt-play-agent-linux-x64`,
    docker: [
      'docker run -d --name ctrl-alt-play-agent --restart unless-stopped',
      '-v /var/run/docker.sock:/var/run/docker.sock',
      `-v ${AGENT_DATA_DIR}:${AGENT_DATA_DIR}`,
      ...assign.map((a) => `-e ${a}`),
      'ctrl-alt-play-agent',
    ].join(' '),
    systemd: `install -d -m 700 /etc/ctrl-alt-play && printf '%s\\n' ${assign.map((a) => `'${a}'`).join(' ')} > /etc/ctrl-alt-play/agent.env && chmod 600 /etc/ctrl-alt-play/agent.env && systemctl enable --now ctrl-alt-play-agent`,
    npx: `${assign.join(' ')} npx ctrl-alt-play agent`,
  };
}
