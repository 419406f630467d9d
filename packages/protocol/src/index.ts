export * from './client.ts';
export * from './errors.ts';
export * from './image-ref.ts';
export * from './messages.ts';
export * from './mods.ts';
export * from './player-commands.ts';
export * from './stacks.ts';
export * from './states.ts';
