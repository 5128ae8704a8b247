import { memo } from 'react';
import { NetworkError } from '../api';

export function StateBadge({ state, testid }: { state: string; testid?: string }) {
  const cls = ['running', 'starting', 'stopped', 'failed', 'backoff'].includes(state) ? state : 'other';
  return (
    <span className={'badge badge-' + cls} data-testid={testid ?? 'state-badge'} data-state={state}>
      {state || '—'}
    </span>
  );
}

/** Sparkline: an inline SVG of the last samples (no axes). */
export const Sparkline = memo(function Sparkline({ values, label }: { values: number[]; label: string }) {
  const w = 80;
  const h = 22;
  if (values.length < 2) return <svg className="spark" width={w} height={h} role="img" aria-label={label} />;
  const max = Math.max(...values, 1e-9) * 1.15;
  const step = w / (values.length - 1);
  const pts = values.map((v, i) => `${(i * step).toFixed(1)},${(h - 2 - (v / max) * (h - 4)).toFixed(1)}`).join(' ');
  return (
    <svg className="spark" width={w} height={h} viewBox={`0 0 ${w} ${h}`} role="img" aria-label={label}>
      <polyline points={pts} fill="none" stroke="currentColor" strokeWidth="1.5" />
    </svg>
  );
});

export function rate(v: number | undefined): string {
  if (v === undefined || !Number.isFinite(v)) return '—';
  if (v === 0) return '0';
  if (v < 10) return v.toFixed(1);
  if (v < 1000) return v.toFixed(0);
  return (v / 1000).toFixed(1) + 'k';
}

export function count(v: number | undefined): string {
  if (v === undefined) return '—';
  return v.toLocaleString('en-US');
}

export function age(sec: number | undefined): string {
  if (sec === undefined || sec === null || !Number.isFinite(sec) || sec <= 0) return '—';
  if (sec < 60) return `${sec.toFixed(0)} s`;
  if (sec < 3600) return `${(sec / 60).toFixed(0)} min`;
  if (sec < 86400) return `${(sec / 3600).toFixed(1)} h`;
  return `${(sec / 86400).toFixed(1)} d`;
}

export function time(ts: string | undefined): string {
  if (!ts) return '—';
  const d = new Date(ts);
  if (Number.isNaN(d.getTime())) return ts;
  return d.toLocaleString('en-GB', { hour12: false });
}

export function ErrorNote({ error }: { error: unknown }) {
  if (!error || error instanceof NetworkError) return null; // the banner says it
  const msg = error instanceof Error ? error.message : String(error);
  return (
    <p className="error-note" role="alert">
      {msg}
    </p>
  );
}

/** copyText: the clipboard API where allowed (secure context), else a hidden textarea. */
export async function copyText(text: string): Promise<void> {
  if (navigator.clipboard && window.isSecureContext) {
    await navigator.clipboard.writeText(text);
    return;
  }
  const ta = document.createElement('textarea');
  ta.value = text;
  ta.setAttribute('readonly', '');
  ta.className = 'offscreen';
  document.body.appendChild(ta);
  ta.select();
  document.execCommand('copy');
  ta.remove();
}
