/** One error shape everywhere: `{ code, message, requestId }` (+ location/details). */
import { CodedError, ErrorCode, httpStatusOf, isCodedError } from '@cap/protocol';
import type { FastifyError, FastifyInstance } from 'fastify';
import { hasZodFastifySchemaValidationErrors } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { isDatabaseUnavailable, isUniqueViolation } from '../lib/db-errors.ts';

export const ErrorResponse = z
  .object({
    code: ErrorCode,
    message: z.string(),
    requestId: z.string(),
    location: z.string().optional(),
    details: z.unknown().optional(),
  })
  .meta({ id: 'Error' });
export type ErrorResponse = z.infer<typeof ErrorResponse>;

function fromFastify(err: FastifyError): CodedError {
  const status = err.statusCode ?? 500;
  if (status === 404) return new CodedError('NOT_FOUND', err.message);
  if (status === 413) return new CodedError('PAYLOAD_TOO_LARGE', 'request body too large');
  if (status === 415) return new CodedError('UNSUPPORTED_MEDIA_TYPE', err.message);
  if (status === 429) return new CodedError('RATE_LIMITED', err.message);
  if (status >= 400 && status < 500) return new CodedError('VALIDATION_FAILED', err.message);
  return new CodedError('INTERNAL_ERROR', 'internal error');
}

export function installErrorHandler(app: FastifyInstance): void {
  app.setErrorHandler((err: unknown, req, reply) => {
    let coded: CodedError;
    if (hasZodFastifySchemaValidationErrors(err)) {
      const issues = err.validation.map((v) => ({
        path: `${err.validationContext ?? 'body'}${v.instancePath.replaceAll('/', '.')}`,
        message: v.message ?? 'invalid',
      }));
      coded = new CodedError('VALIDATION_FAILED', issues.map((i) => `${i.path}: ${i.message}`).join('; '), {
        location: issues[0]?.path,
        details: issues,
      });
    } else if (isCodedError(err)) {
      coded = err;
    } else if (isUniqueViolation(err)) {
      // two requests raced past a "does it exist?" check; the unique index settled it
      coded = new CodedError('CONFLICT', 'it already exists');
    } else if (isDatabaseUnavailable(err)) {
      req.log.warn({ err }, 'database unavailable');
      coded = new CodedError('DATABASE_UNAVAILABLE', 'the database is unavailable; try again shortly');
    } else if (err && typeof err === 'object' && 'statusCode' in err) {
      coded = fromFastify(err as FastifyError);
      if (coded.code === 'INTERNAL_ERROR') req.log.error({ err }, 'request failed');
    } else {
      req.log.error({ err }, 'request failed');
      coded = new CodedError('INTERNAL_ERROR', 'internal error');
    }
    const body: ErrorResponse = {
      code: coded.code,
      message: coded.message,
      requestId: String(req.id),
      ...(coded.location ? { location: coded.location } : {}),
      ...(coded.details === undefined ? {} : { details: coded.details }),
    };
    req.errorCode = coded.code;
    reply.status(httpStatusOf[coded.code]).send(body);
  });
}

export function errorBody(code: ErrorCode, message: string, requestId: string): ErrorResponse {
  return { code, message, requestId };
}
