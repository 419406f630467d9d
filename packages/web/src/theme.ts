import { createTheme, type MantineColorsTuple } from '@mantine/core';

// "deep sea": navy surfaces, cyan accents (seed 000's look)
const abyss: MantineColorsTuple = [
  '#c9d6e8',
  '#a7b8d0',
  '#8093b0',
  '#5b6f8f',
  '#2a3a55',
  '#1b2a42',
  '#132036',
  '#0d182b',
  '#091222',
  '#060d19',
];

export const theme = createTheme({
  primaryColor: 'cyan',
  primaryShade: { light: 7, dark: 5 },
  colors: { dark: abyss },
  fontFamily: 'Inter, "Segoe UI", system-ui, -apple-system, sans-serif',
  fontFamilyMonospace: '"JetBrains Mono", "Fira Code", ui-monospace, Menlo, Consolas, monospace',
  defaultRadius: 'md',
  headings: { fontWeight: '650' },
  focusRing: 'auto',
  // a user who asks the system for less motion gets no modal/menu transitions (the e2e tests ask too)
  respectReducedMotion: true,
});

/** Monospace for what the user types (names, commands), not for the field's label. */
export const MONO_INPUT = { input: { fontFamily: 'var(--mantine-font-family-monospace)' } } as const;
