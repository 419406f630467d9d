/**
 * Two-factor authentication: TOTP (RFC 6238, otplib) and one-time recovery codes.
 *
 * Replay-safe (RFC 6238 §5.2, the lesson of Pterodactyl's CVE-2025-69197, where a code stayed
 * valid for its whole window however often it was used): the time step of every accepted code is
 * stored per user and only a later step is accepted afterwards, by a compare-and-set UPDATE, so two
 * parallel requests with one code cannot both pass. The enrolment code counts as used too.
 * The secret is sealed with DATA_DIR/keys/totp.key and never returned after enrolment; recovery
 * codes are stored as HMACs under the same key and each is consumed by one conditional UPDATE.
 */
import { randomInt } from 'node:crypto';
import { CodedError } from '@cap/protocol';
import { generateSecret, generateURI, verify } from 'otplib';
import QRCode from 'qrcode';
import type { Db } from '../../db/index.ts';
import { nowIso } from '../../db/index.ts';
import { hmac, seal, shortId, unseal } from '../../lib/crypto.ts';
import { loadOrCreateKey } from '../../lib/private-files.ts';

export const RECOVERY_CODE_COUNT = 10;
const ISSUER = 'Ctrl-Alt-Play';
/** one step either side of now: clocks drift, people type slowly */
const TOLERANCE_SECONDS = 30;
const RECOVERY_ALPHABET = 'abcdefghijkmnpqrstuvwxyz23456789';
const TOTP_RE = /^\d{6}$/;

/** 16 characters of a 32-letter alphabet (80 bits), as `xxxx-xxxx-xxxx-xxxx`. */
function newRecoveryCode(): string {
  let s = '';
  for (let i = 0; i < 16; i += 1) s += RECOVERY_ALPHABET[randomInt(RECOVERY_ALPHABET.length)];
  return s.replace(/(.{4})(?=.)/g, '$1-');
}
const normaliseRecovery = (code: string): string => code.toLowerCase().replace(/[\s-]/g, '');

export interface Enrolment {
  secret: string;
  otpauthUri: string;
  /** the otpauth URI as a PNG data URL, for authenticator apps to scan */
  qrDataUrl: string;
}

export class TwoFactorService {
  readonly #db: Db;
  readonly #dataDir: string;
  #key: Uint8Array | undefined;

  constructor(db: Db, dataDir: string) {
    this.#db = db;
    this.#dataDir = dataDir;
  }

  #k(): Uint8Array {
    this.#key ??= loadOrCreateKey(this.#dataDir, 'totp').key;
    return this.#key;
  }

  async #user(userId: string) {
    const u = await this.#db
      .selectFrom('users')
      .select(['id', 'email', 'totp_secret', 'totp_pending_secret', 'totp_enabled_at', 'totp_last_step'])
      .where('id', '=', userId)
      .executeTakeFirst();
    if (!u) throw new CodedError('NOT_FOUND', 'no such user');
    return u;
  }

  async status(userId: string): Promise<{ enabled: boolean; recoveryCodesLeft: number }> {
    const u = await this.#user(userId);
    const row = await this.#db
      .selectFrom('recovery_codes')
      .select((eb) => eb.fn.countAll().as('n'))
      .where('user_id', '=', userId)
      .where('used_at', 'is', null)
      .executeTakeFirstOrThrow();
    return { enabled: Boolean(u.totp_secret), recoveryCodesLeft: Number(row.n) };
  }

  async enabled(userId: string): Promise<boolean> {
    return Boolean((await this.#user(userId)).totp_secret);
  }

  /** A new secret, kept pending until a code from it is confirmed. */
  async start(userId: string): Promise<Enrolment> {
    const u = await this.#user(userId);
    if (u.totp_secret) throw new CodedError('INVALID_STATE', 'two-factor authentication is already on');
    const secret = generateSecret();
    await this.#db
      .updateTable('users')
      .set({ totp_pending_secret: seal(this.#k(), secret) })
      .where('id', '=', userId)
      .execute();
    const otpauthUri = generateURI({ issuer: ISSUER, label: u.email, secret });
    const qrDataUrl = await QRCode.toDataURL(otpauthUri, {
      errorCorrectionLevel: 'M',
      margin: 1,
      width: 240,
    });
    return { secret, otpauthUri, qrDataUrl };
  }

  /** The first code from the pending secret turns 2FA on; returns the recovery codes (shown once). */
  async confirm(userId: string, code: string): Promise<string[]> {
    const u = await this.#user(userId);
    if (u.totp_secret) throw new CodedError('INVALID_STATE', 'two-factor authentication is already on');
    if (!u.totp_pending_secret) throw new CodedError('INVALID_STATE', 'start the enrolment first');
    const step = await this.#matchStep(unseal(this.#k(), u.totp_pending_secret), code, null);
    if (step === null) throw new CodedError('AUTH_FAILED', 'wrong code');
    const r = await this.#db
      .updateTable('users')
      .set({
        totp_secret: u.totp_pending_secret,
        totp_pending_secret: null,
        totp_enabled_at: nowIso(),
        // the enrolment code is spent: it cannot log in a second time
        totp_last_step: step,
      })
      .where('id', '=', userId)
      .where('totp_secret', 'is', null)
      .where('totp_pending_secret', '=', u.totp_pending_secret)
      .executeTakeFirst();
    if (Number(r.numUpdatedRows) !== 1) throw new CodedError('CONFLICT', 'the enrolment changed meanwhile');
    return this.#replaceRecoveryCodes(userId);
  }

  async #replaceRecoveryCodes(userId: string): Promise<string[]> {
    const codes = Array.from({ length: RECOVERY_CODE_COUNT }, newRecoveryCode);
    const now = nowIso();
    await this.#db.transaction().execute(async (tx) => {
      await tx.deleteFrom('recovery_codes').where('user_id', '=', userId).execute();
      await tx
        .insertInto('recovery_codes')
        .values(
          codes.map((c) => ({
            id: shortId('rc'),
            user_id: userId,
            code_hash: hmac(this.#k(), `recovery:${normaliseRecovery(c)}`),
            created_at: now,
            used_at: null,
          })),
        )
        .execute();
    });
    return codes;
  }

  /** A fresh set of recovery codes (the old ones stop working); the caller checked a factor. */
  async regenerateRecoveryCodes(userId: string): Promise<string[]> {
    if (!(await this.enabled(userId)))
      throw new CodedError('INVALID_STATE', 'two-factor authentication is off');
    return this.#replaceRecoveryCodes(userId);
  }

  async disable(userId: string): Promise<void> {
    await this.#db.transaction().execute(async (tx) => {
      await tx
        .updateTable('users')
        .set({ totp_secret: null, totp_pending_secret: null, totp_enabled_at: null, totp_last_step: null })
        .where('id', '=', userId)
        .execute();
      await tx.deleteFrom('recovery_codes').where('user_id', '=', userId).execute();
    });
  }

  /** The time step `code` belongs to, when it is right and later than `after`; else null. */
  async #matchStep(secret: string, code: string, after: number | null): Promise<number | null> {
    if (!TOTP_RE.test(code)) return null;
    const r = await verify({
      secret,
      token: code,
      epochTolerance: TOLERANCE_SECONDS,
      ...(after === null ? {} : { afterTimeStep: after }),
    });
    // the TOTP strategy reports which step matched (the union type also covers HOTP)
    const step = r.valid ? (r as { timeStep?: unknown }).timeStep : undefined;
    return typeof step === 'number' && Number.isSafeInteger(step) ? step : null;
  }

  /**
   * Checks a second factor: a 6-digit TOTP code or a recovery code. A TOTP step is consumed by
   * a compare-and-set on totp_last_step and a recovery code by a conditional UPDATE: a replay, or
   * the same code sent twice in parallel, passes at most once. Throws AUTH_FAILED otherwise.
   */
  async verify(
    userId: string,
    input: { code?: string; recoveryCode?: string },
  ): Promise<'totp' | 'recovery'> {
    const u = await this.#user(userId);
    if (!u.totp_secret) throw new CodedError('INVALID_STATE', 'two-factor authentication is off');
    if (input.code !== undefined) {
      const last =
        u.totp_last_step === null || u.totp_last_step === undefined ? null : Number(u.totp_last_step);
      const step = await this.#matchStep(unseal(this.#k(), u.totp_secret), input.code, last);
      if (step !== null) {
        const r = await this.#db
          .updateTable('users')
          .set({ totp_last_step: step })
          .where('id', '=', userId)
          .where((eb) => eb.or([eb('totp_last_step', 'is', null), eb('totp_last_step', '<', step)]))
          .executeTakeFirst();
        if (Number(r.numUpdatedRows) === 1) return 'totp';
      }
      throw new CodedError('AUTH_FAILED', 'wrong or already used code');
    }
    if (input.recoveryCode !== undefined) {
      const r = await this.#db
        .updateTable('recovery_codes')
        .set({ used_at: nowIso() })
        .where('user_id', '=', userId)
        .where('code_hash', '=', hmac(this.#k(), `recovery:${normaliseRecovery(input.recoveryCode)}`))
        .where('used_at', 'is', null)
        .executeTakeFirst();
      if (Number(r.numUpdatedRows) === 1) return 'recovery';
      throw new CodedError('AUTH_FAILED', 'wrong or already used recovery code');
    }
    throw new CodedError('VALIDATION_FAILED', 'give code or recoveryCode', { location: 'code' });
  }
}
