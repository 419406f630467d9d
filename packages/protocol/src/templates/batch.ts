import { z } from 'zod';
import { type ErrorCode, isCodedError } from '../errors.ts';
import { type ImportResult, importTemplate } from './import.ts';
import { MAX_TEMPLATE_BYTES } from './parse-source.ts';
import type { Template, TemplateWarning } from './template.ts';

/**
 * Import several egg files at once, for the CLI and the API. Each file stands alone: a bad one is
 * reported and does not stop the others. A file is stored only after it parsed and normalised
 * completely, so nothing is half-imported; with `check` nothing is stored at all.
 */

/** Body of `POST /api/templates/import`: the file's content as published, and its name. */
export const TemplateImportRequest = z.object({
  content: z.string().min(1).max(MAX_TEMPLATE_BYTES),
  /** e.g. `egg-paper.yaml`: its extension picks JSON or YAML; without one the content tells */
  filename: z.string().max(255).optional(),
});
export type TemplateImportRequest = z.infer<typeof TemplateImportRequest>;

export interface TemplateInput {
  /** a name for reports (path or upload name); its extension picks JSON or YAML */
  file: string;
  content: string;
}

export interface TemplateImportReport {
  file: string;
  ok: boolean;
  code?: ErrorCode;
  message?: string;
  location?: string;
  /** present when ok */
  name?: string;
  format?: Template['source']['format'];
  warnings?: TemplateWarning[];
  /** what the store returned (e.g. the new template id) */
  id?: string;
}

/** Where imported templates go (the Panel's repository); returns an id. */
export type TemplateStore = (
  template: Template,
  meta: { file: string; warnings: TemplateWarning[] },
) => Promise<string>;

export async function importTemplates(
  inputs: readonly TemplateInput[],
  opts: { check: boolean; store?: TemplateStore },
): Promise<TemplateImportReport[]> {
  if (!opts.check && !opts.store) throw new Error('importTemplates needs a store unless check is set');
  const reports: TemplateImportReport[] = [];
  for (const input of inputs) {
    let result: ImportResult;
    try {
      result = importTemplate(input.content, { filename: input.file });
    } catch (e) {
      reports.push(failure(input.file, e));
      continue;
    }
    const report: TemplateImportReport = {
      file: input.file,
      ok: true,
      name: result.template.name,
      format: result.template.source.format,
      warnings: result.warnings,
    };
    if (!opts.check && opts.store) {
      try {
        report.id = await opts.store(result.template, { file: input.file, warnings: result.warnings });
      } catch (e) {
        reports.push(failure(input.file, e));
        continue;
      }
    }
    reports.push(report);
  }
  return reports;
}

function failure(file: string, e: unknown): TemplateImportReport {
  if (isCodedError(e)) {
    const r: TemplateImportReport = { file, ok: false, code: e.code, message: e.message };
    if (e.location !== undefined) r.location = e.location;
    return r;
  }
  return { file, ok: false, code: 'INTERNAL_ERROR', message: (e as Error).message };
}
