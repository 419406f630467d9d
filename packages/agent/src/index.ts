export { type RunningAgent, startAgent } from './agent.ts';
export { type AgentConfig, loadAgentConfig } from './config/config.ts';
export { AGENT_VERSION } from './version.ts';
