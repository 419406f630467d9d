export * from './batch.ts';
export * from './export.ts';
export * from './features.ts';
export * from './import.ts';
export * from './parse-source.ts';
export * from './rules.ts';
export * from './runtime.ts';
export * from './template.ts';
