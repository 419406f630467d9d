export * from './client.ts';
export * from './errors.ts';
export * from './messages.ts';
export * from './states.ts';
