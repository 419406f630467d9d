export { openPanelAdmin, type PanelAdmin } from './admin.ts';
export { type BuildOptions, build, defaultLogger, type RunningPanel, startPanel } from './app.ts';
export { loadPanelConfig, type PanelConfig } from './config/index.ts';
export { type Db, openDatabase } from './db/index.ts';
export { PANEL_VERSION } from './modules/auth/routes.ts';
export type { PanelServices } from './services.ts';
