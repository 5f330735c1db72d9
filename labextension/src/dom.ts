/**
 * Small DOM helpers shared by the panel's sections: element creation, the error box,
 * progress bars and human-readable numbers.
 */
import { APIError, IHint } from './request';

type Child = Node | string | null | undefined | false;

/** Attributes of `h()`: `class`, `aria-*`, `data-*`, properties, and `on<event>` handlers. */
export type Attrs = Record<string, unknown>;

/** Create an element: `h('button', {class: 'x', 'aria-label': 'Load', onclick}, 'Load')`. */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) {
      continue;
    }
    if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2), value as EventListener);
    } else if (key === 'class') {
      el.className = String(value);
    } else if (key.startsWith('aria-') || key.startsWith('data-') || key === 'role' ||
      key === 'for' || key === 'tabindex') {
      el.setAttribute(key, value === true ? 'true' : String(value));
    } else {
      (el as unknown as Record<string, unknown>)[key] = value;
    }
  }
  for (const child of children) {
    if (child !== null && child !== undefined && child !== false) {
      el.append(child);
    }
  }
  return el;
}

/** A button with an accessible label (its tooltip too). */
export function button(
  label: string,
  onClick: () => void,
  opts: { ariaLabel?: string; cls?: string; disabled?: boolean; primary?: boolean } = {}
): HTMLButtonElement {
  const cls = ['jp-llm-button', opts.primary ? 'jp-mod-accept' : '', opts.cls ?? '']
    .filter(Boolean)
    .join(' ');
  return h(
    'button',
    {
      type: 'button',
      class: cls,
      'aria-label': opts.ariaLabel ?? label,
      title: opts.ariaLabel ?? label,
      disabled: opts.disabled,
      onclick: onClick
    },
    label
  );
}

/** The message to show for any thrown value (`error.message` of the server's envelope). */
export function errorMessage(error: unknown): string {
  if (error instanceof APIError || error instanceof Error) {
    return error.message;
  }
  return String(error);
}

/** A button an error offers as its next step (Download, Load, Retry…). */
export interface IErrorAction {
  /** The button's text, in the words of the panel ("Download tiny-chat"). */
  label: string;
  /** Do it; the error is cleared when it succeeds, and shown again when it fails. */
  run(): Promise<unknown>;
  /** A sentence shown with the button (e.g. how to set an API key); optional. */
  explain?: string;
}

/** Whether trying again may work: a busy model, a lost connection, a server failure. */
export function isTransient(error: unknown): boolean {
  if (!(error instanceof APIError) || error.type === 'cancelled') {
    return false;
  }
  return error.hint?.action === 'retry' || error.type === 'busy' || error.status === 0 ||
    error.status >= 500;
}

/** Turns an error's structured hint into a button (null: no button fits). */
export type ActionResolver = (hint: IHint, error: APIError) => IErrorAction | null;

/** Append `text` to `parent`, with `backtick` spans as `<code>` (no raw backticks). */
export function appendRich(parent: HTMLElement, text: string): void {
  const parts = text.split('`');
  parts.forEach((part, i) => {
    if (part) {
      parent.append(i % 2 ? h('code', {}, part) : part);
    }
  });
}

/** The sentences of a message without the command-line instructions a button replaces. */
export function withoutCommandLine(message: string): string {
  const sentences = message.match(/[^.!?]+(?:[.!?]+(?=\s|$)|$)/g) ?? [message];
  const kept = sentences.filter(s => !/`jupyter llm |`%llm |`pip install /.test(s));
  return (kept.length ? kept.join('') : message).trim();
}

/**
 * A dismissible alert that shows errors; every failure in a section lands here. An error
 * whose envelope carries a hint (`details.action`) gets a button for that next step; any
 * later success (`ErrorBox.succeeded()`) clears every box, so no stale error lingers.
 */
export class ErrorBox {
  /** Resolves hints to buttons (set once by the plugin, shared by all sections). */
  static resolveAction: ActionResolver | null = null;
  private static readonly boxes = new Set<ErrorBox>();

  /** Something the user asked for succeeded: clear every error shown. */
  static succeeded(): void {
    for (const box of ErrorBox.boxes) {
      box.clear();
    }
  }

  readonly node: HTMLElement;
  private readonly text: HTMLElement;
  private readonly actions: HTMLElement;
  private shown = 0;

  constructor() {
    this.text = h('span', { class: 'jp-llm-error-text' });
    this.actions = h('span', { class: 'jp-llm-error-actions' });
    this.node = h(
      'div',
      { class: 'jp-llm-error', role: 'alert', hidden: true },
      h('div', { class: 'jp-llm-error-main' }, this.text, this.actions),
      button('×', () => this.clear(), { ariaLabel: 'Dismiss error', cls: 'jp-llm-icon-button' })
    );
    ErrorBox.boxes.add(this);
  }

  /** Show an error (or replace the one shown); `retry` adds a Retry button. */
  show(error: unknown, retry?: () => Promise<unknown>): void {
    const message = errorMessage(error);
    this.shown++;
    const hint = error instanceof APIError ? error.hint : null;
    let action = hint && ErrorBox.resolveAction ? ErrorBox.resolveAction(hint, error as APIError) : null;
    const fromHint = action !== null;
    if (!action && retry && isTransient(error)) {
      action = { label: 'Retry', run: retry };
    }
    this.text.replaceChildren();
    if (error instanceof APIError && error.type === 'rate_limited') {
      // A limit of the class policy: say so first; the message says which and when it resets.
      this.text.append(h('strong', { class: 'jp-llm-error-title' }, 'Usage limit reached. '));
    }
    appendRich(this.text, fromHint ? withoutCommandLine(message) : message);
    this.actions.replaceChildren();
    if (action) {
      if (action.explain) {
        const p = h('div', { class: 'jp-llm-error-explain' });
        appendRich(p, action.explain);
        this.actions.append(p);
      }
      const b = button(action.label, () => void this.run(action as IErrorAction, b), {
        cls: 'jp-llm-small jp-llm-error-action',
        primary: true
      });
      b.dataset.action = hint?.action ?? 'retry';
      const wait = Number(hint?.retry_after ?? 0);
      if (hint?.action === 'retry' && wait > 0) {
        this.countdown(b, action.label, Math.ceil(wait));
      }
      this.actions.append(b);
    }
    this.node.dataset.type = error instanceof APIError ? error.type : 'error';
    this.node.dataset.action = action ? (hint?.action ?? 'retry') : '';
    this.node.hidden = false;
    console.warn('jupyter-llm:', message);
  }

  private countdown(b: HTMLButtonElement, label: string, seconds: number): void {
    b.disabled = true;
    const tick = (): void => {
      if (seconds <= 0 || !b.isConnected) {
        b.disabled = false;
        b.textContent = label;
        return;
      }
      b.textContent = `${label} in ${seconds} s`;
      seconds--;
      window.setTimeout(tick, 1000);
    };
    tick();
  }

  private async run(action: IErrorAction, b: HTMLButtonElement): Promise<void> {
    b.disabled = true;
    b.textContent = `${action.label}…`;
    const shown = this.shown;
    try {
      await action.run();
      if (this.shown === shown) {
        this.clear(); // unless the action itself reported a new error
      }
    } catch (error) {
      this.show(error);
    }
  }

  /** The message shown ('' when hidden). */
  get message(): string {
    return this.node.hidden ? '' : this.text.textContent ?? '';
  }

  /** Hide the error. */
  clear(): void {
    this.node.hidden = true;
    this.text.replaceChildren();
    this.actions.replaceChildren();
  }
}

/** Briefly say that a button did its job ("Copied") and announce it to screen readers. */
export function flash(b: HTMLButtonElement, text: string, ms = 1500): void {
  const label = b.dataset.label ?? b.textContent ?? '';
  b.dataset.label = label;
  b.textContent = text;
  b.classList.add('jp-mod-done');
  window.setTimeout(() => {
    b.textContent = label;
    b.classList.remove('jp-mod-done');
  }, ms);
}

/** Seconds since `start` as `12 s` / `1 min 5 s` (for "still working" stages). */
export function elapsed(start: number): string {
  return formatSeconds(Math.floor(Math.max(0, (Date.now() - start) / 1000))) || '0 s';
}

/** A labelled progress bar (`role=progressbar`). */
export class ProgressBar {
  readonly node: HTMLElement;
  private readonly fill: HTMLElement;
  readonly label: HTMLElement;
  /** The last known fraction done (0 before any). */
  fraction = 0;

  constructor(ariaLabel: string) {
    this.fill = h('div', { class: 'jp-llm-progress-fill' });
    this.label = h('span', { class: 'jp-llm-progress-label' });
    this.node = h(
      'div',
      { class: 'jp-llm-progress' },
      h(
        'div',
        {
          class: 'jp-llm-progress-track',
          role: 'progressbar',
          'aria-label': ariaLabel,
          'aria-valuemin': '0',
          'aria-valuemax': '100'
        },
        this.fill
      ),
      this.label
    );
  }

  /** Set the fraction done (null: indeterminate) and the text next to the bar. */
  set(fraction: number | null, text: string): void {
    const track = this.node.firstElementChild as HTMLElement;
    if (fraction === null || !isFinite(fraction)) {
      track.removeAttribute('aria-valuenow');
      this.fill.style.width = '100%';
      this.fill.classList.add('jp-mod-indeterminate');
    } else {
      this.fraction = fraction;
      const pct = Math.max(0, Math.min(100, Math.floor(fraction * 100)));
      track.setAttribute('aria-valuenow', String(pct));
      this.fill.style.width = `${pct}%`;
      this.fill.classList.remove('jp-mod-indeterminate');
    }
    this.label.textContent = text;
  }
}

/** `1.5 MB` */
export function formatBytes(n: number | null | undefined): string {
  if (n === null || n === undefined || !isFinite(n)) {
    return '?';
  }
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let i = 0;
  let v = n;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${v >= 10 || i === 0 ? Math.round(v) : v.toFixed(1)} ${units[i]}`;
}

/** `1 min 5 s` */
export function formatSeconds(s: number | null | undefined): string {
  if (s === null || s === undefined || !isFinite(s)) {
    return '';
  }
  if (s < 60) {
    return `${Math.ceil(s)} s`;
  }
  return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
}
