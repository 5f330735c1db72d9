/**
 * The Chat section: a model picker and an optional collection to ground on; answers stream
 * as Markdown (rendermime); citations open the cited file at the cited place; stop, copy and
 * insert-into-notebook.
 */
import { Clipboard } from '@jupyterlab/apputils';
import { IRenderMimeRegistry, MimeModel } from '@jupyterlab/rendermime';
import { IRenderMime } from '@jupyterlab/rendermime-interfaces';
import { Widget } from '@lumino/widgets';

import * as api from './api';
import { citationLabel } from './citations';
import { button, ErrorBox, h } from './dom';
import { APIError } from './request';
import { LLMState } from './state';

/** What the chat needs from the application. */
export interface IChatHost {
  rendermime: IRenderMimeRegistry;
  /** Open a cited source at its place (errors are shown by the chat). */
  openCitation(c: api.ICitation): Promise<void>;
  /** Insert text as a markdown cell below the active cell of the current notebook. */
  insertIntoNotebook(text: string): Promise<void>;
}

/**
 * The citations to list under an answer: those it cites, or all of them when it cites none,
 * is not supported by the collection, or is the passages themselves.
 */
export function shownCitations(line: api.IChatLine): api.ICitation[] {
  const all = line.citations ?? [];
  const cited = new Set(line.cited ?? []);
  const used = all.filter(c => cited.has(c.n));
  return used.length && line.supported !== false && !line.retrieval_only ? used : all;
}

/** One answer being shown: its text, markdown renderer and footer. */
class AssistantMessage {
  readonly node: HTMLElement;
  text = '';
  citations: api.ICitation[] = [];
  private readonly body: HTMLElement;
  private readonly citationList: HTMLElement;
  private readonly footer: HTMLElement;
  private readonly stats: HTMLElement;
  private readonly renderer: IRenderMime.IRenderer;
  private rendering: Promise<void> = Promise.resolve();
  private pending = false;
  private timer: number | null = null;

  constructor(
    private readonly host: IChatHost,
    private readonly errors: ErrorBox,
    label: string
  ) {
    this.renderer = host.rendermime.createRenderer('text/markdown');
    this.body = h('div', { class: 'jp-llm-message-body' }, this.renderer.node);
    this.citationList = h('ol', { class: 'jp-llm-citations', 'aria-label': 'Citations', hidden: true });
    this.stats = h('span', { class: 'jp-llm-stats' });
    this.footer = h(
      'div',
      { class: 'jp-llm-message-footer', hidden: true },
      this.stats,
      button('Copy', () => this.copy(), { ariaLabel: 'Copy answer', cls: 'jp-llm-small' }),
      button('Insert into notebook', () => this.insert(), {
        ariaLabel: 'Insert answer into notebook',
        cls: 'jp-llm-small'
      })
    );
    this.node = h(
      'div',
      { class: 'jp-llm-message jp-llm-assistant', 'aria-label': label, 'aria-busy': 'true' },
      h('div', { class: 'jp-llm-message-role' }, label),
      this.body,
      this.citationList,
      this.footer
    );
  }

  /** Append streamed text; the markdown is re-rendered at most every 80 ms. */
  append(delta: string): void {
    this.text += delta;
    if (this.timer === null) {
      this.timer = window.setTimeout(() => {
        this.timer = null;
        this.render();
      }, 80);
    }
  }

  /** Render the current text (serialised: one render at a time, the latest text wins). */
  render(): Promise<void> {
    if (this.pending) {
      return this.rendering;
    }
    this.pending = true;
    this.rendering = this.rendering.then(async () => {
      this.pending = false;
      const model = new MimeModel({ data: { 'text/markdown': this.text }, trusted: false });
      try {
        await this.renderer.renderModel(model);
      } catch (error) {
        this.errors.show(error);
      }
    });
    return this.rendering;
  }

  /** Show the citations as buttons that open the sources. */
  setCitations(citations: api.ICitation[]): void {
    this.citations = citations;
    this.citationList.replaceChildren(
      ...citations.map(c =>
        h(
          'li',
          { value: c.n },
          h(
            'button',
            {
              type: 'button',
              class: 'jp-llm-citation',
              'aria-label': `Open source ${c.n}: ${citationLabel(c)}`,
              title: c.path,
              'data-n': String(c.n),
              'data-path': c.path,
              'data-start-line': c.start_line ? String(c.start_line) : undefined,
              onclick: () => {
                this.host.openCitation(c).catch(error => this.errors.show(error));
              }
            },
            `[${c.n}] ${citationLabel(c)}`
          )
        )
      )
    );
    this.citationList.hidden = citations.length === 0;
  }

  /** The stream ended: final render, stats and the copy/insert buttons. */
  async finish(note: string): Promise<void> {
    if (this.timer !== null) {
      window.clearTimeout(this.timer);
      this.timer = null;
    }
    await this.render();
    this.stats.textContent = note;
    this.footer.hidden = false;
    for (const b of this.footer.querySelectorAll('button')) {
      (b as HTMLButtonElement).hidden = !this.text;
    }
    this.node.setAttribute('aria-busy', 'false');
  }

  /** The answer as markdown, with its sources listed. */
  markdown(): string {
    if (!this.citations.length) {
      return this.text;
    }
    const sources = this.citations.map(c => `[${c.n}] ${citationLabel(c)}`).join('  \n');
    return `${this.text}\n\n**Sources**  \n${sources}`;
  }

  private copy(): void {
    Clipboard.copyToSystem(this.markdown());
  }

  private insert(): void {
    this.host.insertIntoNotebook(this.markdown()).catch(error => this.errors.show(error));
  }

  dispose(): void {
    this.renderer.dispose();
  }
}

/** The Chat section of the side panel. */
export class ChatSection extends Widget {
  readonly errors = new ErrorBox();
  private readonly modelSelect: HTMLSelectElement;
  private readonly collectionSelect: HTMLSelectElement;
  private readonly transcript: HTMLElement;
  private readonly input: HTMLTextAreaElement;
  private readonly sendButton: HTMLButtonElement;
  private readonly stopButton: HTMLButtonElement;
  private readonly history: api.IMessage[] = [];
  private readonly answers: AssistantMessage[] = [];
  private abort: AbortController | null = null;

  constructor(private readonly state: LLMState, private readonly host: IChatHost) {
    super();
    this.addClass('jp-llm-section');
    this.addClass('jp-llm-chat');
    this.modelSelect = h('select', { class: 'jp-llm-select', 'aria-label': 'Model', id: 'jp-llm-chat-model' });
    this.collectionSelect = h('select', {
      class: 'jp-llm-select',
      'aria-label': 'Ground answers on a collection',
      id: 'jp-llm-chat-collection'
    });
    this.transcript = h('div', {
      class: 'jp-llm-transcript',
      role: 'log',
      'aria-live': 'polite',
      'aria-label': 'Conversation',
      tabindex: '0'
    });
    this.input = h('textarea', {
      class: 'jp-llm-input jp-llm-prompt',
      rows: 3,
      placeholder: 'Ask a question (Enter sends, Shift+Enter adds a line)',
      'aria-label': 'Message',
      onkeydown: (e: KeyboardEvent) => {
        if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
          e.preventDefault();
          void this.send();
        }
      }
    });
    this.sendButton = button('Send', () => void this.send(), { ariaLabel: 'Send message', primary: true });
    this.stopButton = button('Stop', () => this.stop(), { ariaLabel: 'Stop answering', disabled: true });
    this.node.append(
      h(
        'div',
        { class: 'jp-llm-form' },
        h('label', { class: 'jp-llm-label', for: 'jp-llm-chat-model' }, 'Model'),
        this.modelSelect,
        h('label', { class: 'jp-llm-label', for: 'jp-llm-chat-collection' }, 'Ground on'),
        this.collectionSelect
      ),
      this.errors.node,
      this.transcript,
      h(
        'div',
        { class: 'jp-llm-composer' },
        this.input,
        h(
          'div',
          { class: 'jp-llm-actions' },
          this.sendButton,
          this.stopButton,
          button('New chat', () => this.clear(), { ariaLabel: 'Start a new chat' })
        )
      )
    );
    state.changed.connect(() => this.renderPickers());
    this.renderPickers();
  }

  /** The model id chosen ('' means the server's default). */
  get model(): string {
    return this.modelSelect.value;
  }

  /** The collection to ground on ('' for none). */
  get collection(): string {
    return this.collectionSelect.value;
  }

  /** Choose the collection to ground on. */
  set collection(name: string) {
    this.renderPickers();
    this.collectionSelect.value = name;
  }

  /** Focus the message box. */
  focusInput(): void {
    this.input.focus();
  }

  private renderPickers(): void {
    const keep = (select: HTMLSelectElement, fallback: string): string =>
      select.dataset.touched ? select.value : fallback;
    const model = keep(this.modelSelect, this.state.defaultModel);
    const models = this.state.chatModels();
    const ids = models.map(m => m.id);
    if (model && !ids.includes(model)) {
      ids.unshift(model);
    }
    this.modelSelect.replaceChildren(
      h('option', { value: '' }, 'Server default'),
      ...ids.map(id => {
        const m = models.find(x => x.id === id);
        const suffix = m?.state === 'loaded' ? ' (loaded)' : '';
        return h('option', { value: id }, `${m?.name || id}${suffix}`);
      })
    );
    this.modelSelect.value = model;
    this.modelSelect.onchange = () => (this.modelSelect.dataset.touched = '1');

    const coll = keep(this.collectionSelect, this.state.defaultCollection);
    const names = this.state.collections.map(c => c.name);
    if (coll && !names.includes(coll)) {
      names.unshift(coll);
    }
    this.collectionSelect.replaceChildren(
      h('option', { value: '' }, 'No collection'),
      ...names.map(n => h('option', { value: n }, n))
    );
    this.collectionSelect.value = coll;
    this.collectionSelect.onchange = () => (this.collectionSelect.dataset.touched = '1');
  }

  /** Send the message box's text (or `text`) and stream the answer. */
  async send(text?: string): Promise<void> {
    const question = (text ?? this.input.value).trim();
    if (!question || this.abort) {
      return;
    }
    this.input.value = '';
    this.errors.clear();
    const model = this.model || null;
    const collection = this.collection;
    this.transcript.append(
      h(
        'div',
        { class: 'jp-llm-message jp-llm-user', 'aria-label': 'You' },
        h('div', { class: 'jp-llm-message-role' }, 'You'),
        h('div', { class: 'jp-llm-message-body' }, question)
      )
    );
    const label = `${model ?? 'default model'}${collection ? ` · ${collection}` : ''}`;
    const answer = new AssistantMessage(this.host, this.errors, label);
    this.answers.push(answer);
    this.transcript.append(answer.node);
    this.transcript.scrollTop = this.transcript.scrollHeight;
    this.abort = new AbortController();
    this.setStreaming(true);
    let summary: api.IChatLine = {};
    const onLine = (line: api.IChatLine): void => {
      if (line.delta) {
        answer.append(line.delta);
        this.transcript.scrollTop = this.transcript.scrollHeight;
      }
      if (line.citations) {
        answer.setCitations(shownCitations(line));
      }
      if (line.done) {
        summary = line;
      }
    };
    let note = '';
    try {
      if (collection) {
        await api.ask(collection, question, model, onLine, this.abort.signal);
      } else {
        const messages: api.IMessage[] = [...this.history, { role: 'user', content: question }];
        await api.chat(model, messages, onLine, this.abort.signal);
      }
      this.history.push({ role: 'user', content: question }, { role: 'assistant', content: answer.text });
      note = this.describe(summary);
    } catch (error) {
      if (error instanceof APIError && error.type === 'cancelled') {
        note = 'Stopped.';
      } else {
        this.errors.show(error);
        note = 'No answer: see the message above.';
      }
    } finally {
      this.abort = null;
      this.setStreaming(false);
    }
    await answer.finish(note);
    this.transcript.scrollTop = this.transcript.scrollHeight;
  }

  private describe(s: api.IChatLine): string {
    const parts: string[] = [];
    if (s.model) {
      parts.push(s.model);
    }
    const tokens = s.usage?.completion_tokens;
    if (tokens) {
      parts.push(`${tokens} tokens`);
    }
    const t = s.timings ?? {};
    const rate = t.tokens_per_s ?? t.predicted_per_second;
    if (typeof rate === 'number' && isFinite(rate)) {
      parts.push(`${rate.toFixed(1)} tokens/s`);
    }
    if (s.supported === false) {
      parts.push('not supported by the collection');
    }
    if (s.note) {
      parts.push(s.note);
    }
    if (s.finish_reason && s.finish_reason !== 'stop') {
      parts.push(`finished: ${s.finish_reason}`);
    }
    return parts.join(' · ');
  }

  /** Stop the answer being streamed. */
  stop(): void {
    this.abort?.abort();
  }

  /** Forget the conversation. */
  clear(): void {
    this.stop();
    for (const a of this.answers) {
      a.dispose();
    }
    this.answers.length = 0;
    this.history.length = 0;
    this.transcript.replaceChildren();
    this.errors.clear();
  }

  private setStreaming(on: boolean): void {
    this.sendButton.disabled = on;
    this.stopButton.disabled = !on;
    this.node.classList.toggle('jp-mod-streaming', on);
  }
}
