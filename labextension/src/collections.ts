/**
 * The Collections section: list the collections, create one, ingest folders with progress
 * (also from the file browser's "Add to collection"), and search a collection.
 */
import { Widget } from '@lumino/widgets';

import * as api from './api';
import { button, ErrorBox, h, ProgressBar } from './dom';
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

/** The text of one ingest progress line. */
export function ingestText(line: api.IIngestLine): string {
  if (typeof line.summary === 'string') {
    return line.summary;
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
    if (!this.state.collections.some(c => c.name === collection)) {
      if (!(await this.create(collection))) {
        return;
      }
    }
    const bar = new ProgressBar(`Ingest progress of ${collection}`);
    const title = h('div', { class: 'jp-llm-item-meta' },
      `Adding ${contentsPaths.join(', ') || 'the root folder'} to ${collection}`);
    const box = h('div', { class: 'jp-llm-item jp-llm-ingest', 'data-collection': collection },
      title, bar.node);
    this.ingests.append(box);
    bar.set(null, 'Starting…');
    let last: api.IIngestLine = {};
    try {
      await api.ingest(collection, contentsPaths.map(p => this.host.ingestPath(p)), line => {
        last = line;
        const fraction = typeof line.done === 'number' && line.total ? line.done / line.total : null;
        bar.set(fraction, ingestText(line));
      });
      bar.set(1, `Done${ingestText(last) ? ` · ${ingestText(last)}` : ''}`);
      box.dataset.status = 'done';
    } catch (error) {
      bar.set(null, 'Failed');
      box.dataset.status = 'failed';
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
            h('div', { class: 'jp-llm-item-meta' }, `score ${r.score.toFixed(3)}`)
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

  private row(c: api.ICollection): HTMLElement {
    const isDefault = this.state.defaultCollection === c.name;
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
        button('Add folder…', () => {
          this.host.pickFolder(c.name).then(
            path => (path === null ? undefined : this.ingest(c.name, [path])),
            error => this.errors.show(error)
          );
        }, { ariaLabel: `Add a folder to ${c.name}` }),
        !isDefault &&
          button('Set as default', () => {
            this.state.setDefaultCollection(c.name).catch(error => this.errors.show(error));
          }, { ariaLabel: `Set ${c.name} as default collection` })
      )
    );
  }
}
