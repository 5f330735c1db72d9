/**
 * The Collections section: list the collections, create one, ingest folders with progress
 * (also from the file browser's "Add to collection"), and search a collection.
 */
import { Dialog, showDialog } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

import * as api from './api';
import { button, elapsed, ErrorBox, formatBytes, h, ProgressBar } from './dom';
import { LLMState } from './state';

/** What the section needs from the application. */
export interface ICollectionsHost {
  /** Open a search hit's source at its place. */
  openSource(place: { source?: string; path: string; start_line?: number | null;
    end_line?: number | null; cell_index?: number | null }): Promise<void>;
  /** Ground the chat on a collection and show the chat. */
  useInChat(name: string): void;
  /** Ask the user for a folder (a contents path) to ingest; null if cancelled. */
  pickFolder(collection: string): Promise<string | null>;
  /** Turn a contents path into the path the server's ingest expects. */
  ingestPath(contentsPath: string): string;
}

/** The text of one ingest progress line (the summary names the files that failed). */
export function ingestText(line: api.IIngestLine): string {
  if (typeof line.summary === 'string') {
    const failed = (line.failed as { path: string; error?: string }[] | undefined) ?? [];
    const names = failed.map(f => `${String(f.path).split('/').pop()}${f.error ? ` (${f.error})` : ''}`);
    return names.length ? `${line.summary}. Not added: ${names.join('; ')}` : line.summary;
  }
  const parts: string[] = [];
  if (typeof line.done === 'number' && typeof line.total === 'number') {
    parts.push(`${line.done}/${line.total} files`);
  }
  if (line.path) {
    parts.push(String(line.path).split('/').pop() ?? '');
  }
  if (line.status) {
    parts.push(String(line.status));
  }
  if (line.error) {
    parts.push(String(line.error));
  }
  return parts.join(' · ');
}

/**
 * What a search score means to a reader: hybrid scores (rank fusion) are small numbers whose
 * size says little, so each hit is worded relative to the best one.
 */
export function matchWords(score: number, best: number, rank: number): string {
  if (rank === 0) {
    return 'Best match';
  }
  const ratio = best > 0 ? score / best : 0;
  return ratio >= 0.8 ? 'Close match' : ratio >= 0.5 ? 'Partial match' : 'Weak match';
}

/** The Collections section of the side panel. */
export class CollectionsSection extends Widget {
  readonly errors = new ErrorBox();
  private readonly nameInput: HTMLInputElement;
  private readonly list: HTMLElement;
  private readonly ingests: HTMLElement;
  private readonly searchSelect: HTMLSelectElement;
  private readonly searchInput: HTMLInputElement;
  private readonly results: HTMLElement;

  constructor(private readonly state: LLMState, private readonly host: ICollectionsHost) {
    super();
    this.addClass('jp-llm-section');
    this.addClass('jp-llm-collections');
    this.nameInput = h('input', {
      class: 'jp-llm-input',
      placeholder: 'New collection name',
      'aria-label': 'New collection name',
      onkeydown: (e: KeyboardEvent) => {
        if (e.key === 'Enter') {
          void this.create();
        }
      }
    });
    this.list = h('ul', { class: 'jp-llm-list', 'aria-label': 'Collections' });
    this.ingests = h('div', { class: 'jp-llm-ingests', 'aria-live': 'polite' });
    this.searchSelect = h('select', { class: 'jp-llm-select', 'aria-label': 'Collection to search' });
    this.searchInput = h('input', {
      type: 'search',
      class: 'jp-llm-input',
      placeholder: 'Search the collection',
      'aria-label': 'Search query',
      onkeydown: (e: KeyboardEvent) => {
        if (e.key === 'Enter') {
          void this.search();
        }
      }
    });
    this.results = h('ol', { class: 'jp-llm-results', 'aria-label': 'Search results' });
    this.node.append(
      h(
        'div',
        { class: 'jp-llm-toolbar' },
        this.nameInput,
        button('Create', () => void this.create(), { ariaLabel: 'Create collection', primary: true }),
        button('↻', () => void this.refresh(), {
          ariaLabel: 'Refresh collections',
          cls: 'jp-llm-icon-button'
        })
      ),
      h('p', { class: 'jp-llm-hint' },
        'Add a folder with the file browser: right-click it, then "Add to collection".'),
      this.errors.node,
      this.ingests,
      this.list,
      h('h3', { class: 'jp-llm-heading' }, 'Search'),
      h(
        'div',
        { class: 'jp-llm-toolbar' },
        this.searchSelect,
        this.searchInput,
        button('Search', () => void this.search(), { ariaLabel: 'Search collection' })
      ),
      this.results
    );
    state.changed.connect((_, change) => {
      if (change === 'collections' || change === 'settings') {
        this.render();
      }
    });
  }

  /** Reload the collections, showing any error. */
  async refresh(): Promise<void> {
    try {
      await this.state.refreshCollections();
    } catch (error) {
      this.errors.show(error);
    }
  }

  /** Create a collection named in the box (or `name`). */
  async create(name?: string): Promise<boolean> {
    const n = (name ?? this.nameInput.value).trim();
    if (!n) {
      this.errors.show(new Error('Type a name for the new collection first.'));
      return false;
    }
    this.errors.clear();
    try {
      await api.createCollection(n);
      this.nameInput.value = '';
      await this.refresh();
      return true;
    } catch (error) {
      this.errors.show(error);
      return false;
    }
  }

  /**
   * Ingest contents paths into a collection (created first if it does not exist), showing
   * progress; resolves when the ingest ends.
   */
  async ingest(collection: string, contentsPaths: string[]): Promise<void> {
    this.errors.clear();
    // The box and a ticking stage show at once: creating a collection, reading the files and
    // loading the embedding model (first use) can each take seconds before the first file.
    const bar = new ProgressBar(`Ingest progress of ${collection}`);
    const title = h('div', { class: 'jp-llm-item-meta' },
      `Adding ${contentsPaths.join(', ') || 'the root folder'} to ${collection}`);
    const box = h('div', { class: 'jp-llm-item jp-llm-ingest', 'data-collection': collection },
      title, bar.node);
    this.ingests.append(box);
    const start = Date.now();
    let stage = 'Preparing';
    let line: api.IIngestLine | null = null;
    let fraction: number | null = null;
    const show = (): void => {
      const text = line ? ingestText(line) : `${stage}…`;
      bar.set(fraction, `${text} · ${elapsed(start)}`);
    };
    show();
    const timer = window.setInterval(show, 1000);
    let last: api.IIngestLine = {};
    try {
      if (!this.state.collections.some(c => c.name === collection)) {
        stage = `Creating ${collection}`;
        show();
        if (!(await this.create(collection))) {
          throw new Error(this.errors.message || `Could not create ${collection}.`);
        }
      }
      stage = 'Reading the files and loading the embedding model (the first time takes a while)';
      show();
      await api.ingest(collection, contentsPaths.map(p => this.host.ingestPath(p)), l => {
        last = l;
        line = l;
        fraction = typeof l.done === 'number' && l.total ? l.done / l.total : fraction;
        if (typeof l.path === 'string') {
          stage = `Reading the files after ${String(l.path).split('/').pop()}`;
        }
        show();
      });
      window.clearInterval(timer);
      bar.set(1, `Done${ingestText(last) ? ` · ${ingestText(last)}` : ''} · ${elapsed(start)}`);
      box.dataset.status = 'done';
      ErrorBox.succeeded();
    } catch (error) {
      window.clearInterval(timer);
      bar.set(null, 'Failed');
      box.dataset.status = 'failed';
      this.errors.show(error);
    }
    await this.refresh();
  }

  /** Ask the user for a folder to add to `collection` (null if cancelled). */
  pickFolderFor(collection: string): Promise<string | null> {
    return this.host.pickFolder(collection);
  }

  /** Ask, then delete a collection (its source files stay). */
  async remove(name: string): Promise<void> {
    const result = await showDialog({
      title: `Delete the collection ${name}?`,
      body: 'Its index is deleted; the files it was built from stay where they are.',
      buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: 'Delete' })],
      defaultButton: 0
    });
    if (!result.button.accept) {
      return;
    }
    try {
      await api.deleteCollection(name);
      if (this.state.defaultCollection === name) {
        await this.state.setDefaultCollection('');
      }
      ErrorBox.succeeded();
    } catch (error) {
      this.errors.show(error);
    }
    await this.refresh();
  }

  /** Search the chosen collection and list the hits. */
  async search(): Promise<void> {
    const name = this.searchSelect.value;
    const query = this.searchInput.value.trim();
    if (!name || !query) {
      this.errors.show(new Error(name ? 'Type something to search for.' : 'Create a collection first.'));
      return;
    }
    this.errors.clear();
    try {
      const answer = await api.search(name, query);
      const best = answer.results[0]?.score ?? 0;
      this.results.replaceChildren(
        ...answer.results.map((r, i) =>
          h(
            'li',
            { class: 'jp-llm-result' },
            h(
              'button',
              {
                type: 'button',
                class: 'jp-llm-citation',
                'aria-label': `Open result ${i + 1}: ${r.source}`,
                onclick: () => {
                  this.host
                    .openSource({ ...r, path: r.path ?? r.source })
                    .catch(error => this.errors.show(error));
                }
              },
              `${r.source}${r.start_line ? `:${r.start_line}` : ''}${r.heading ? ` › ${r.heading.split(' > ').pop()}` : ''}`
            ),
            h('div', { class: 'jp-llm-snippet' }, r.text.slice(0, 300)),
            h('div', { class: 'jp-llm-item-meta jp-llm-match', title: `score ${r.score.toFixed(3)}` },
              matchWords(r.score, best, i))
          )
        )
      );
      if (answer.results.length === 0) {
        this.results.replaceChildren(h('li', { class: 'jp-llm-hint' }, 'No matches.'));
      }
    } catch (error) {
      this.errors.show(error);
    }
  }

  /** Redraw the list from the shared state. */
  render(): void {
    const names = this.state.collections.map(c => c.name);
    const chosen = this.searchSelect.value || this.state.defaultCollection;
    this.searchSelect.replaceChildren(...names.map(n => h('option', { value: n }, n)));
    if (names.includes(chosen)) {
      this.searchSelect.value = chosen;
    }
    if (this.state.collections.length === 0) {
      this.list.replaceChildren(
        h('li', { class: 'jp-llm-hint' },
          this.state.collectionsError ? 'Collections are unavailable.' : 'No collections yet.')
      );
      return;
    }
    this.list.replaceChildren(...this.state.collections.map(c => this.row(c)));
  }

  /** Show or hide the list of a collection's documents under its row. */
  private async toggleDocuments(name: string, list: HTMLElement, toggle: HTMLButtonElement): Promise<void> {
    if (!list.hidden) {
      list.hidden = true;
      toggle.setAttribute('aria-expanded', 'false');
      return;
    }
    try {
      const docs = await api.listDocuments(name);
      list.replaceChildren(
        ...docs.map(d => h(
          'li',
          {},
          h('button', {
            type: 'button',
            class: 'jp-llm-citation jp-llm-document',
            'aria-label': `Open ${d.source}`,
            title: d.title || d.source,
            onclick: () => {
              this.host.openSource({ source: d.source, path: d.path }).catch(
                error => this.errors.show(error));
            }
          }, d.source),
          h('span', { class: 'jp-llm-item-meta' },
            ` · ${d.n_chunks ?? 0} chunks${d.size ? ` · ${formatBytes(d.size)}` : ''}`)
        )),
        ...(docs.length ? [] : [h('li', { class: 'jp-llm-hint' }, 'No documents yet: Add folder… adds some.')])
      );
      list.hidden = false;
      toggle.setAttribute('aria-expanded', 'true');
    } catch (error) {
      this.errors.show(error);
    }
  }

  private row(c: api.ICollection): HTMLElement {
    const isDefault = this.state.defaultCollection === c.name;
    const docList = h('ul', { class: 'jp-llm-documents', 'aria-label': `Documents of ${c.name}`, hidden: true });
    const docsButton = button('Documents', () => void this.toggleDocuments(c.name, docList, docsButton),
      { ariaLabel: `Documents of ${c.name}` });
    docsButton.setAttribute('aria-expanded', 'false');
    const meta = c.error
      ? c.error
      : [
          `${c.documents ?? 0} documents`,
          `${c.chunks ?? 0} chunks`,
          c.embedding_model ?? '',
          c.vector_backend ?? ''
        ].filter(Boolean).join(' · ');
    return h(
      'li',
      { class: 'jp-llm-item', 'data-collection': c.name },
      h(
        'div',
        { class: 'jp-llm-item-head' },
        h('span', { class: 'jp-llm-item-title' }, c.name),
        isDefault && h('span', { class: 'jp-llm-badge jp-llm-default' }, 'default')
      ),
      h('div', { class: 'jp-llm-item-meta' }, meta),
      h(
        'div',
        { class: 'jp-llm-actions' },
        button('Chat', () => this.host.useInChat(c.name), { ariaLabel: `Chat with ${c.name}` }),
        !c.error && docsButton,
        button('Add folder…', () => {
          this.host.pickFolder(c.name).then(
            path => (path === null ? undefined : this.ingest(c.name, [path])),
            error => this.errors.show(error)
          );
        }, { ariaLabel: `Add a folder to ${c.name}` }),
        !isDefault &&
          button('Set as default', () => {
            this.state.setDefaultCollection(c.name).catch(error => this.errors.show(error));
          }, { ariaLabel: `Set ${c.name} as default collection` }),
        button('Delete', () => void this.remove(c.name), { ariaLabel: `Delete collection ${c.name}` })
      ),
      docList
    );
  }
}
