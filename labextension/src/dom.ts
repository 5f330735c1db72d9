/**
 * Small DOM helpers shared by the panel's sections: element creation, the error box,
 * progress bars and human-readable numbers.
 */
import { APIError } from './request';

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

/** A dismissible alert that shows errors; every failure in a section lands here. */
export class ErrorBox {
  readonly node: HTMLElement;
  private readonly text: HTMLElement;

  constructor() {
    this.text = h('span', { class: 'jp-llm-error-text' });
    this.node = h(
      'div',
      { class: 'jp-llm-error', role: 'alert', hidden: true },
      this.text,
      button('×', () => this.clear(), { ariaLabel: 'Dismiss error', cls: 'jp-llm-icon-button' })
    );
  }

  /** Show an error (or replace the one shown). */
  show(error: unknown): void {
    const message = errorMessage(error);
    this.text.textContent = message;
    this.node.dataset.type = error instanceof APIError ? error.type : 'error';
    this.node.hidden = false;
    console.warn('jupyter-llm:', message);
  }

  /** Hide the error. */
  clear(): void {
    this.node.hidden = true;
    this.text.textContent = '';
  }
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
