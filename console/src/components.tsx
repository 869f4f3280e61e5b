import type { ComponentChildren } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import type { ApiError } from './api';

/** A state as a coloured word; colour is never the only cue, the word is always there. */
export function Badge({ value }: { value: string | null | undefined }) {
  if (!value) return <span class="muted">—</span>;
  return <span class={`badge badge-${value.toLowerCase()}`}>{value}</span>;
}

/** A modal <dialog>: focus moves in, Escape closes it, focus returns where it was. */
export function Dialog({ title, open, onClose, children }: { title: string; open: boolean; onClose: () => void; children: ComponentChildren }) {
  const ref = useRef<HTMLDialogElement>(null);
  useEffect(() => {
    const d = ref.current;
    if (!d) return;
    if (open && !d.open) d.showModal();
    if (!open && d.open) d.close();
  }, [open]);
  const titleId = `dialog-${title.replace(/\W+/g, '-').toLowerCase()}`;
  return (
    <dialog ref={ref} aria-labelledby={titleId} onClose={onClose} onCancel={onClose}>
      <h2 id={titleId}>{title}</h2>
      {open && children}
    </dialog>
  );
}

/** Asks before a destructive action; the confirm button names the action. */
export function Confirm({ action, subject, detail, onConfirm, onCancel }: { action: string | null; subject: string; detail: string; onConfirm: () => void; onCancel: () => void }) {
  return (
    <Dialog title={action ? `${action} ${subject}?` : 'Confirm'} open={action !== null} onClose={onCancel}>
      <p>{detail}</p>
      <div class="actions">
        <button type="button" onClick={onCancel}>Cancel</button>
        <button type="button" class="danger" onClick={onConfirm} autofocus>
          {action}
        </button>
      </div>
    </Dialog>
  );
}

/** Allocation against capacity, with the numbers in words for screen readers and small screens. */
export function Bar({ label, used, total, format = String }: { label: string; used: number; total: number; format?: (n: number) => string }) {
  const ratio = total > 0 ? Math.min(used / total, 1) : 0;
  const level = ratio > 0.9 ? 'high' : ratio > 0.7 ? 'mid' : 'low';
  return (
    <div class="bar">
      <span class="bar-label">{label}</span>
      <span
        class="bar-track"
        role="meter"
        aria-label={`${label} allocated`}
        aria-valuemin={0}
        aria-valuemax={total}
        aria-valuenow={used}
        aria-valuetext={`${format(used)} of ${format(total)}`}
      >
        <span class={`bar-fill bar-${level}`} style={{ width: `${(ratio * 100).toFixed(1)}%` }} />
      </span>
      <span class="bar-text">
        {format(used)} / {format(total)}
      </span>
    </div>
  );
}

export function ErrorNote({ error }: { error: ApiError | string | undefined | null }) {
  if (!error) return null;
  const text = typeof error === 'string' ? error : `${error.code}: ${error.message}`;
  return (
    <p class="error" role="alert">
      {text}
    </p>
  );
}

export function Loading() {
  return <p class="muted" aria-live="polite">Loading…</p>;
}

/**
 * A menu button (WAI-ARIA menu button pattern): Enter/Space/ArrowDown opens it and focuses the first
 * item, arrows move, Escape closes and returns focus, a click outside closes it.
 */
export function MenuButton({ label, text, items }: { label: string; text: string; items: { key: string; label: string; danger?: boolean; run: () => void }[] }) {
  const [open, setOpen] = useState(false);
  const [at, setAt] = useState({ top: 0, right: 0 });
  const root = useRef<HTMLDivElement>(null);
  const button = useRef<HTMLButtonElement>(null);
  useEffect(() => {
    if (!open) return;
    // Fixed to the viewport, so a table's scroll container never clips the menu of its last row.
    const r = button.current!.getBoundingClientRect();
    setAt({ top: r.bottom + 4, right: document.documentElement.clientWidth - r.right });
    root.current?.querySelector<HTMLElement>('[role="menuitem"]')?.focus();
    const outside = (e: MouseEvent) => root.current && !root.current.contains(e.target as Node) && setOpen(false);
    const close = () => setOpen(false);
    document.addEventListener('mousedown', outside);
    addEventListener('resize', close);
    addEventListener('scroll', close, true);
    return () => {
      document.removeEventListener('mousedown', outside);
      removeEventListener('resize', close);
      removeEventListener('scroll', close, true);
    };
  }, [open]);
  const onKey = (e: KeyboardEvent) => {
    const entries = [...(root.current?.querySelectorAll<HTMLElement>('[role="menuitem"]') ?? [])];
    const at = entries.indexOf(document.activeElement as HTMLElement);
    if (e.key === 'Escape') {
      setOpen(false);
      button.current?.focus();
    } else if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
      e.preventDefault();
      if (!open) return setOpen(true);
      const step = e.key === 'ArrowDown' ? 1 : -1;
      entries[(at + step + entries.length) % entries.length]?.focus();
    }
  };
  return (
    <div class="menu" ref={root} onKeyDown={onKey}>
      <button type="button" ref={button} aria-label={label} aria-haspopup="menu" aria-expanded={open} onClick={() => setOpen(!open)}>
        {text} <span aria-hidden="true">▾</span>
      </button>
      {open && (
        <ul role="menu" aria-label={label} style={{ top: `${at.top}px`, right: `${at.right}px` }}>
          {items.map((item) => (
            <li role="none" key={item.key}>
              <button
                type="button"
                role="menuitem"
                tabIndex={-1}
                class={item.danger ? 'danger-text' : ''}
                onClick={() => {
                  setOpen(false);
                  item.run();
                }}
              >
                {item.label}
              </button>
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}

/**
 * A labelled input whose API error (a zod issue on its field) is shown under it and tied to it with
 * aria-describedby, so a screen reader reads the reason with the field.
 */
export function Field({ form, name, label, error, ...input }: { form: string; name: string; label: string; error: ApiError | null } & Record<string, unknown>) {
  const id = `${form}-${name}`;
  const message = error?.issueFor(name);
  return (
    <>
      <label for={id}>{label}</label>
      <input id={id} name={name} autocomplete="off" {...input} {...(message ? { 'aria-invalid': true, 'aria-describedby': `${id}-error` } : {})} />
      {message && (
        <span id={`${id}-error`} class="field-error">
          {message}
        </span>
      )}
    </>
  );
}

/**
 * One confirmation for a page's destructive actions: `ask` opens it, its confirm button names the
 * action, and only a confirm runs it.
 */
export function useConfirm() {
  const [pending, setPending] = useState<{ action: string; subject: string; detail: string; run: () => void } | null>(null);
  const ask = (action: string, subject: string, detail: string, run: () => void) => setPending({ action, subject, detail, run });
  const dialog = (
    <Confirm
      action={pending?.action ?? null}
      subject={pending?.subject ?? ''}
      detail={pending?.detail ?? ''}
      onCancel={() => setPending(null)}
      onConfirm={() => {
        const p = pending;
        setPending(null);
        p?.run();
      }}
    />
  );
  return { ask, dialog };
}

/** A labelled select with the same error wiring as Field. */
export function SelectField({
  form,
  name,
  label,
  error,
  options,
  ...select
}: { form: string; name: string; label: string; error: ApiError | null; options: { value: string; label: string }[] } & Record<string, unknown>) {
  const id = `${form}-${name}`;
  const message = error?.issueFor(name);
  return (
    <>
      <label for={id}>{label}</label>
      <select id={id} name={name} {...select} {...(message ? { 'aria-invalid': true, 'aria-describedby': `${id}-error` } : {})}>
        {options.map((o) => (
          <option key={o.value} value={o.value}>
            {o.label}
          </option>
        ))}
      </select>
      {message && (
        <span id={`${id}-error`} class="field-error">
          {message}
        </span>
      )}
    </>
  );
}

/** The errors a form's fields did not take, shown under the form. */
export const unplacedError = (error: ApiError | null, fields: string[]): ApiError | null => (error && !fields.some((f) => error.issueFor(f)) ? error : null);
