/** A self-signed certificate made with openssl, as an operator would make one (system tests). */
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';

export interface SelfSigned {
  cert: string;
  key: string;
  /** the certificate's SHA-256 fingerprint, as AGENT_PANEL_CERT_SHA256 takes it */
  sha256: string;
}

/** An EC P-256 certificate valid 2 days, written into `dir` (`<certFile>`, `<keyFile>`). */
export function selfSigned(
  dir: string,
  opts: { cn: string; subjectAltName?: string; certFile?: string; keyFile?: string },
): SelfSigned {
  const cert = path.join(dir, opts.certFile ?? `${opts.cn}.crt`);
  const key = path.join(dir, opts.keyFile ?? `${opts.cn}.key`);
  const san = opts.subjectAltName ? ['-addext', `subjectAltName=${opts.subjectAltName}`] : [];
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-days',
      '2',
      '-subj',
      `/CN=${opts.cn}`,
      ...san,
      '-keyout',
      key,
      '-out',
      cert,
    ],
    { stdio: 'pipe' },
  );
  return { cert, key, sha256: new X509Certificate(readFileSync(cert)).fingerprint256 };
}
