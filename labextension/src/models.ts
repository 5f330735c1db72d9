/**
 * The Models section: search and filter the registry by tag; each model's state; download
 * with live progress and cancel; load and unload; memory use; set as default.
 */
import { Dialog, showDialog } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

import * as api from './api';
import { appendRich, button, ErrorBox, errorMessage, formatBytes, formatSeconds, h, ProgressBar } from './dom';
import { APIError } from './request';
import { canChat, isAllowed, isEmbedding, keyMissing, LLMState } from './state';

/** A download this panel follows (started here, or found running on the server). */
interface IPull {
  bar: ProgressBar;
  status: 'running' | 'done' | 'cancelled' | 'failed';
  abort?: AbortController;
}

/** The text next to a download's progress bar. */
export function progressText(p: api.IPullProgress): string {
  const total = p.total_bytes ?? 0;
  const done = p.done_bytes ?? 0;
  const parts: string[] = [];
  if (total > 0) {
    parts.push(`${Math.floor((100 * done) / total)}%`);
    parts.push(`${formatBytes(done)} of ${formatBytes(total)}`);
  } else {
    parts.push(formatBytes(done));
  }
  if (p.rate_bytes_per_s) {
    parts.push(`${formatBytes(p.rate_bytes_per_s)}/s`);
  }
  const eta = p.eta_s ?? (p.rate_bytes_per_s && total > done
    ? (total - done) / p.rate_bytes_per_s : null);
  if (eta) {
    parts.push(`about ${formatSeconds(eta)} left`);
  }
  if (p.message) {
    parts.push(p.message);
  }
  return parts.join(' · ');
}

/** Whether a model runs here (a file to download and load) rather than behind an API. */
export function isLocal(m: api.IModel): boolean {
  return m.backend === 'llama_cpp';
}

/**
 * Loaded, then installed local models, then the user's own registry models, then the rest
 * (remote models without their key, then models the class policy does not allow, last), each
 * in registry order.
 */
export function sortModels(models: api.IModel[]): api.IModel[] {
  const rank = (m: api.IModel): number =>
    !isAllowed(m) ? 5
      : m.state === 'loaded' ? 0
      : isLocal(m) && m.state === 'installed' ? 1
        : m.own ? 2
          : keyMissing(m) ? 4 : 3;
  return models
    .map((m, i) => ({ m, i }))
    .sort((a, b) => rank(a.m) - rank(b.m) || a.i - b.i)
    .map(x => x.m);
}

/** The Models section of the side panel. */
export class ModelsSection extends Widget {
  readonly errors = new ErrorBox();
  private readonly query: HTMLInputElement;
  private readonly tagSelect: HTMLSelectElement;
  private readonly summary: HTMLElement;
  private readonly list: HTMLElement;
  private readonly pulls = new Map<string, IPull>();
  private readonly busy = new Set<string>();
  private pollTimer: number | null = null;

  constructor(private readonly state: LLMState) {
    super();
    this.addClass('jp-llm-section');
    this.addClass('jp-llm-models');
    this.query = h('input', {
      type: 'search',
      class: 'jp-llm-input',
      placeholder: 'Search models',
      'aria-label': 'Search models',
      oninput: () => this.render()
    });
    this.tagSelect = h('select', {
      class: 'jp-llm-select',
      'aria-label': 'Filter models by tag',
      onchange: () => this.render()
    });
    this.summary = h('div', { class: 'jp-llm-summary', 'aria-live': 'polite' });
    this.list = h('ul', { class: 'jp-llm-list', 'aria-label': 'Models' });
    this.node.append(
      h(
        'div',
        { class: 'jp-llm-toolbar' },
        this.query,
        this.tagSelect,
        button('↻', () => void this.refresh(), {
          ariaLabel: 'Refresh models',
          cls: 'jp-llm-icon-button'
        })
      ),
      this.errors.node,
      this.summary,
      this.list
    );
    state.changed.connect((_, change) => {
      if (change === 'models' || change === 'settings') {
        this.render();
      }
    });
  }

  /** Reload the models from the server, showing any error. */
  async refresh(): Promise<void> {
    try {
      await this.state.refreshModels();
      this.followRemoteDownloads();
    } catch (error) {
      this.errors.show(error);
    }
  }

  /** Download a model with live progress; resolves when it ends (done, cancelled or failed). */
  async download(id: string): Promise<void> {
    const existing = this.pulls.get(id);
    if (existing?.status === 'running') {
      return;
    }
    const pull: IPull = {
      bar: new ProgressBar(`Download progress of ${id}`),
      status: 'running',
      abort: new AbortController()
    };
    pull.bar.set(0, 'Starting download…');
    this.pulls.set(id, pull);
    this.setState(id, 'downloading');
    this.errors.clear();
    try {
      await api.pull(
        id,
        p => {
          const total = p.total_bytes ?? 0;
          if (p.status === 'done') {
            pull.bar.set(1, '100% · downloaded');
          } else {
            pull.bar.set(total > 0 ? (p.done_bytes ?? 0) / total : null, progressText(p));
          }
        },
        pull.abort?.signal
      );
      pull.status = 'done';
      pull.bar.set(1, '100% · downloaded');
      ErrorBox.succeeded();
    } catch (error) {
      if (error instanceof APIError && error.type === 'cancelled') {
        pull.status = 'cancelled';
        pull.bar.set(
          pull.bar.fraction,
          `Cancelled at ${Math.floor(pull.bar.fraction * 100)}%; Download resumes it.`
        );
      } else {
        pull.status = 'failed';
        pull.bar.set(pull.bar.fraction, `Failed: ${errorMessage(error).replace(/`/g, '')}`);
        this.errors.show(error);
      }
    }
    await this.refresh();
  }

  /** Cancel a running download. */
  async cancel(id: string): Promise<void> {
    try {
      await api.cancelPull(id);
    } catch (error) {
      this.errors.show(error);
    }
    const pull = this.pulls.get(id);
    if (pull?.status === 'running') {
      pull.abort?.abort();
    }
  }

  private async act(id: string, what: string, fn: () => Promise<unknown>): Promise<void> {
    this.busy.add(id);
    this.errors.clear();
    this.render();
    const row = this.list.querySelector(`[data-model-id="${CSS.escape(id)}"] .jp-llm-note`);
    if (row) {
      row.textContent = `${what}…`;
    }
    let failure: unknown = null;
    try {
      await fn();
      ErrorBox.succeeded();
    } catch (error) {
      failure = error;
    } finally {
      this.busy.delete(id);
    }
    await this.refresh();
    if (failure !== null) {
      this.errors.show(failure);
      throw failure;
    }
  }

  /** Load a model (the row shows "Loading…"); throws what the server answered. */
  load(id: string): Promise<void> {
    return this.act(id, 'Loading', () => api.load(id));
  }

  /** Delete a broken model file and download the model again (after asking). */
  async removeAndPull(id: string): Promise<void> {
    const model = this.state.models.find(m => m.id === id);
    if (model && model.state !== 'available') {
      await this.remove(id);
    }
    if (this.state.models.find(m => m.id === id)?.state === 'available') {
      await this.download(id);
    }
  }

  /** Ask, then delete an installed model's file. */
  async remove(id: string): Promise<void> {
    const result = await showDialog({
      title: `Delete ${id}?`,
      body: 'Its downloaded file is deleted from this server. Download it again to use it.',
      buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: 'Delete' })],
      defaultButton: 0
    });
    if (!result.button.accept) {
      return;
    }
    await this.act(id, 'Deleting', () => api.removeModel(id));
  }

  private setState(id: string, state: api.ModelState): void {
    const model = this.state.models.find(m => m.id === id);
    if (model) {
      model.state = state;
    }
    this.render();
  }

  /** Poll `downloads` while a download this panel did not start is running. */
  private followRemoteDownloads(): void {
    const remote = this.state.models.some(
      m => m.state === 'downloading' && this.pulls.get(m.id)?.status !== 'running'
    );
    if (!remote || this.pollTimer !== null) {
      return;
    }
    this.pollTimer = window.setTimeout(async () => {
      this.pollTimer = null;
      try {
        const running = await api.listDownloads();
        for (const p of running) {
          let pull = this.pulls.get(p.model_id);
          if (!pull || pull.status !== 'running') {
            pull = { bar: new ProgressBar(`Download progress of ${p.model_id}`), status: 'done' };
            this.pulls.set(p.model_id, pull);
          }
          const total = p.total_bytes ?? 0;
          pull.bar.set(total > 0 ? (p.done_bytes ?? 0) / total : null, progressText(p));
        }
        if (running.length === 0) {
          await this.refresh();
          return;
        }
        this.render();
      } catch (error) {
        this.errors.show(error);
        return;
      }
      this.followRemoteDownloads();
    }, 1000);
  }

  private tags(): string[] {
    const tags = new Set<string>();
    for (const m of this.state.models) {
      for (const t of m.tags ?? []) {
        tags.add(t);
      }
    }
    return [...tags].sort();
  }

  private renderTags(): void {
    const current = this.tagSelect.value;
    const tags = this.tags();
    this.tagSelect.replaceChildren(
      h('option', { value: '' }, 'All tags'),
      ...tags.map(t => h('option', { value: t }, t))
    );
    this.tagSelect.value = tags.includes(current) ? current : '';
  }

  private matches(m: api.IModel): boolean {
    const tag = this.tagSelect.value;
    if (tag && !(m.tags ?? []).includes(tag)) {
      return false;
    }
    const q = this.query.value.trim().toLowerCase();
    if (!q) {
      return true;
    }
    const hay = [m.id, m.name, m.family, m.backend, ...(m.tags ?? [])].join(' ').toLowerCase();
    return q.split(/\s+/).every(word => hay.includes(word));
  }

  /** Redraw the list from the shared state (keeps the download bars). */
  render(): void {
    this.renderTags();
    const loaded = new Map(this.state.loaded.map(p => [p.id, p]));
    const memory = this.state.loaded.reduce((sum, p) => sum + (p.memory_bytes ?? 0), 0);
    const shown = sortModels(this.state.models.filter(m => this.matches(m)));
    this.summary.textContent =
      `${shown.length} of ${this.state.models.length} models · ${loaded.size} loaded` +
      (loaded.size ? ` · ${formatBytes(memory)} in memory` : '');
    const focused = document.activeElement?.closest?.('[data-action]')?.getAttribute('data-action');
    this.list.replaceChildren(...shown.map(m => this.row(m, loaded.get(m.id))));
    if (focused) {
      (this.list.querySelector(`[data-action="${CSS.escape(focused)}"]`) as HTMLElement | null)
        ?.focus();
    }
  }

  private keyNote(m: api.IModel): HTMLElement {
    const note = h('div', { class: 'jp-llm-keynote', 'data-key-missing': 'true' });
    const env = m.hint?.env ?? m.api_key_env ?? 'the API key variable';
    appendRich(note, `Needs an API key: set \`${env}\` where ` +
      'JupyterLab starts, then restart it.');
    return note;
  }

  private row(m: api.IModel, ps: api.IPsEntry | undefined): HTMLElement {
    const id = m.id;
    const isDefault = this.state.defaultModel === id;
    const pull = this.pulls.get(id);
    const busy = this.busy.has(id);
    const actions: HTMLElement[] = [];
    const act = (label: string, key: string, fn: () => void, primary = false): void => {
      const b = button(label, fn, { ariaLabel: `${label} ${id}`, disabled: busy, primary });
      b.dataset.action = `${key}:${id}`;
      actions.push(b);
    };
    const local = isLocal(m);
    const allowed = isAllowed(m);
    if (local && allowed && m.state === 'available') {
      act('Download', 'download', () => void this.download(id), true);
    }
    if (local && m.state === 'downloading') {
      act('Cancel', 'cancel', () => void this.cancel(id));
    }
    const quiet = (p: Promise<void>): void => void p.catch(() => undefined); // shown already
    if (local && allowed && m.state === 'installed') {
      act('Load', 'load', () => quiet(this.load(id)), true);
    }
    if (m.state === 'loaded') {
      act('Unload', 'unload', () => quiet(this.act(id, 'Unloading', () => api.unload(id))));
    }
    if (local && (m.state === 'installed' || m.state === 'loaded')) {
      act('Delete', 'delete', () => quiet(this.remove(id)));
    }
    if (!isDefault && canChat(m)) {
      act('Set as default', 'default', () => {
        this.state.setDefaultModel(id).catch(error => this.errors.show(error));
      });
    }
    const meta = [
      m.backend,
      m.size_bytes ? formatBytes(m.size_bytes) : '',
      m.quantization ?? '',
      m.context_length ? `${m.context_length} ctx` : ''
    ].filter(Boolean);
    return h(
      'li',
      { class: 'jp-llm-item jp-llm-model', 'data-model-id': id, 'data-state': m.state,
        'data-allowed': String(allowed) },
      h(
        'div',
        { class: 'jp-llm-item-head' },
        h('span', { class: 'jp-llm-item-title', title: id }, m.name || id),
        local || m.state === 'loaded'
          ? h('span', { class: `jp-llm-badge jp-llm-state-${m.state}` }, m.state)
          : keyMissing(m)
            ? h('span', { class: 'jp-llm-badge jp-llm-state-nokey', title: `set ${m.hint?.env ?? m.api_key_env}` },
                'no API key')
            : h('span', { class: 'jp-llm-badge jp-llm-state-remote', title: `served by ${m.backend}` },
                'remote'),
        m.own && h('span', { class: 'jp-llm-badge jp-llm-own', title: `from ${m.source ?? 'your registry'}` },
          'yours'),
        isDefault && h('span', { class: 'jp-llm-badge jp-llm-default' }, 'default'),
        !allowed && h('span', {
          class: 'jp-llm-badge jp-llm-not-allowed',
          title: 'Your class policy does not let you use this model'
        }, 'not allowed')
      ),
      !allowed && h('div', { class: 'jp-llm-item-meta' },
        'Not available to you: your class policy does not allow this model.'),
      m.description && h('div', { class: 'jp-llm-description' }, m.description),
      h('div', { class: 'jp-llm-item-meta' }, [id, ...meta, m.license ? `licence: ${m.license}` : '']
        .filter(Boolean).join(' · ')),
      keyMissing(m) && this.keyNote(m),
      isEmbedding(m) && !m.description &&
        h('div', { class: 'jp-llm-item-meta' }, 'Embedding model: used by collections, not for chat.'),
      (m.tags ?? []).length > 0 &&
        h('div', { class: 'jp-llm-tags' },
          ...(m.tags ?? []).map(t => h('span', { class: 'jp-llm-tag' }, t))),
      ps &&
        h(
          'div',
          { class: 'jp-llm-item-meta jp-llm-memory' },
          `In memory: ${formatBytes(ps.memory_bytes)}` +
            (ps.queue_depth ? ` · ${ps.queue_depth} queued` : '')
        ),
      pull && pull.bar.node,
      h('div', { class: 'jp-llm-note', 'aria-live': 'polite' }, busy ? 'Working…' : ''),
      h('div', { class: 'jp-llm-actions' }, ...actions)
    );
  }
}
