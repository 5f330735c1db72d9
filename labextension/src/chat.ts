/**
 * The Chat section: a model picker and an optional collection to ground on; answers stream
 * as Markdown (rendermime); citations open the cited file at the cited place; stop, copy and
 * insert-into-notebook.
 */
import { Clipboard, Dialog, showDialog } from '@jupyterlab/apputils';
import { PageConfig } from '@jupyterlab/coreutils';
import { IRenderMimeRegistry, MimeModel } from '@jupyterlab/rendermime';
import { IRenderMime } from '@jupyterlab/rendermime-interfaces';
import { Widget } from '@lumino/widgets';

import * as api from './api';
import { citationLabel } from './citations';
import { button, elapsed, ErrorBox, flash, h } from './dom';
import { APIError } from './request';
import { LLMState } from './state';

/** What the chat needs from the application. */
export interface IChatHost {
  rendermime: IRenderMimeRegistry;
  /** Open a cited source at its place (errors are shown by the chat). */
  openCitation(c: api.ICitation): Promise<void>;
  /** Insert text as a markdown cell below the active cell of the current notebook. */
  insertIntoNotebook(text: string): Promise<void>;
  /**
   * Put code into the current notebook: a code cell below the active cell, or in place of
   * the active cell's source; the cell's metadata records where it came from.
   */
  insertCode(code: string, mode: 'below' | 'replace', provenance: IProvenance): Promise<void>;
  /** Open a notebook (a path relative to the server's root), e.g. an exported conversation. */
  openNotebook(path: string): Promise<void>;
}

/** Where inserted code came from (cell metadata `jupyter_llm`). */
export interface IProvenance {
  model: string;
  created: string;
  question: string;
}

/** One turn of the conversation (saved on the server, so a reload keeps it). */
interface ISavedTurn {
  question: string;
  label: string;
  answer: string;
  note: string;
  model: string;
  citations: api.ICitation[];
  /** The history entry of the answer (for feedback). */
  requestId?: string | null;
  /** The feedback given: 1 up, -1 down. */
  rating?: number | null;
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

/** `Waiting for <model>: 3rd in line, about 12 s…` (as the magics and widget say it). */
export function waitingText(name: string, place: api.IQueued): string {
  const n = place.position;
  const teen = n % 100 >= 10 && n % 100 <= 20;
  const suffix = teen ? 'th' : ({ 1: 'st', 2: 'nd', 3: 'rd' } as Record<number, string>)[n % 10] ?? 'th';
  const wait = Math.max(1, Math.round(place.expected_wait_s));
  return `Waiting for ${name}: ${n}${suffix} in line, about ${wait} s…`;
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
  private readonly stage: HTMLElement;
  private stageTimer: number | null = null;
  private readonly copyButton: HTMLButtonElement;
  /** The model that answered (for provenance). */
  model = '';
  /** The question this answers (for provenance). */
  question = '';
  /** The history entry of this answer (feedback goes to it); null when not logged. */
  requestId: string | null = null;
  /** The rating given here (1 up, -1 down). */
  rating: number | null = null;
  /** Called when feedback was stored (the chat saves it with the conversation). */
  onRated: (() => void) | null = null;
  private readonly feedbackBar: HTMLElement;
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
    this.stage = h('div', { class: 'jp-llm-stage', role: 'status', hidden: true });
    this.copyButton = button('Copy', () => this.copy(), { ariaLabel: 'Copy answer', cls: 'jp-llm-small' });
    this.feedbackBar = h('div', { class: 'jp-llm-feedback', hidden: true });
    this.footer = h(
      'div',
      { class: 'jp-llm-message-footer', hidden: true },
      this.stats,
      this.copyButton,
      button('Insert into notebook', () => this.insert(), {
        ariaLabel: 'Insert answer into notebook',
        cls: 'jp-llm-small'
      })
    );
    this.node = h(
      'div',
      { class: 'jp-llm-message jp-llm-assistant', 'aria-label': label, 'aria-busy': 'true' },
      h('div', { class: 'jp-llm-message-role' }, label),
      this.stage,
      this.body,
      this.citationList,
      this.footer,
      this.feedbackBar
    );
  }

  /**
   * Say what is happening before the first word (`what()` is re-read every second, with the
   * time waited so far); `null` hides it.
   */
  setStage(what: (() => string) | null, stage = ''): void {
    if (this.stageTimer !== null) {
      window.clearInterval(this.stageTimer);
      this.stageTimer = null;
    }
    if (!what) {
      this.stage.hidden = true;
      delete this.node.dataset.stage;
      return;
    }
    const start = Date.now();
    const show = (): void => {
      this.stage.textContent = `${what()} · ${elapsed(start)}`;
    };
    this.node.dataset.stage = stage;
    this.stage.hidden = false;
    show();
    this.stageTimer = window.setInterval(show, 1000);
  }

  /** Append streamed text; the markdown is re-rendered at most every 80 ms. */
  append(delta: string): void {
    if (!this.text) {
      this.setStage(null);
    }
    this.text += delta;
    if (this.timer === null) {
      this.timer = window.setTimeout(() => {
        this.timer = null;
        this.render();
      }, 80);
    }
  }

  /** Show other text than was streamed (a grounded answer that failed its citation check). */
  replace(text: string): void {
    this.setStage(null);
    this.text = text;
    void this.render();
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
    this.setStage(null);
    await this.render();
    this.addCodeButtons();
    this.stats.textContent = note;
    this.footer.hidden = false;
    for (const b of this.footer.querySelectorAll('button')) {
      (b as HTMLButtonElement).hidden = !this.text;
    }
    this.renderFeedback();
    this.node.setAttribute('aria-busy', 'false');
  }

  /**
   * Thumbs up or down and an optional comment, stored with the answer's history entry
   * (`POST llm/api/history/{request_id}/feedback`); only for answers that were logged.
   */
  private renderFeedback(): void {
    const bar = this.feedbackBar;
    bar.hidden = !this.text || !this.requestId;
    if (this.requestId) {
      this.node.dataset.requestId = this.requestId;
    }
    if (bar.hidden) {
      return;
    }
    const status = h('span', { class: 'jp-llm-feedback-status', role: 'status' });
    const send = async (body: api.IFeedback, done: string): Promise<boolean> => {
      try {
        await api.feedback(this.requestId as string, body);
        status.textContent = done;
        return true;
      } catch (error) {
        this.errors.show(error);
        return false;
      }
    };
    const thumb = (rating: number, label: string, glyph: string): HTMLButtonElement => {
      const b = button(glyph, () => {
        const next = this.rating === rating ? 0 : rating;
        void send({ rating: next }, next ? 'Thanks, your feedback is saved.' : 'Rating removed.')
          .then(ok => {
            if (ok) {
              this.rating = next || null;
              up.setAttribute('aria-pressed', String(this.rating === 1));
              down.setAttribute('aria-pressed', String(this.rating === -1));
              this.onRated?.();
            }
          });
      }, { ariaLabel: label, cls: 'jp-llm-small jp-llm-thumb' });
      b.dataset.rating = String(rating);
      b.setAttribute('aria-pressed', String(this.rating === rating));
      return b;
    };
    const up = thumb(1, 'Good answer', '👍');
    const down = thumb(-1, 'Bad answer', '👎');
    const comment = h('textarea', {
      class: 'jp-llm-input jp-llm-feedback-comment',
      rows: 2,
      placeholder: 'What was good or wrong? (optional)',
      'aria-label': 'Comment on this answer'
    });
    const form = h('div', { class: 'jp-llm-feedback-form', hidden: true }, comment);
    const sendComment = button('Send comment', () => {
      const text = comment.value.trim();
      if (!text) {
        comment.focus();
        return;
      }
      void send({ comment: text }, 'Thanks, your comment is saved.').then(ok => {
        if (ok) {
          form.hidden = true;
          comment.value = '';
          toggle.focus();
        }
      });
    }, { ariaLabel: 'Send the comment', cls: 'jp-llm-small', primary: true });
    form.append(sendComment);
    const toggle = button('Comment…', () => {
      form.hidden = !form.hidden;
      if (!form.hidden) {
        comment.focus();
      }
    }, { ariaLabel: 'Comment on this answer…', cls: 'jp-llm-small' });
    bar.replaceChildren(h('span', { class: 'jp-llm-label' }, 'Was this helpful?'), up, down,
      toggle, status, form);
  }

  /** Copy, insert-below and replace-cell buttons on each code block of the answer. */
  private addCodeButtons(): void {
    const blocks = [...this.renderer.node.querySelectorAll('pre')];
    blocks.forEach((pre, i) => {
      const code = (pre.querySelector('code') ?? pre).textContent ?? '';
      const n = blocks.length > 1 ? ` ${i + 1}` : '';
      const provenance = (): IProvenance => ({
        model: this.model,
        created: new Date().toISOString(),
        question: this.question
      });
      const copy = button('Copy', () => {
        void Clipboard.copyToSystem(code);
        flash(copy, 'Copied');
      }, { ariaLabel: `Copy code${n}`, cls: 'jp-llm-small' });
      const below = button('Insert below', () => {
        this.host.insertCode(code, 'below', provenance()).then(
          () => flash(below, 'Inserted'),
          error => this.errors.show(error));
      }, { ariaLabel: `Insert code${n} in a new cell below`, cls: 'jp-llm-small' });
      const replace = button('Replace cell', () => {
        this.host.insertCode(code, 'replace', provenance()).then(
          () => flash(replace, 'Replaced'),
          error => this.errors.show(error));
      }, { ariaLabel: `Replace the active cell with code${n}`, cls: 'jp-llm-small' });
      const bar = h('div', { class: 'jp-llm-code-actions' }, copy, below, replace);
      pre.before(bar);
      pre.classList.add('jp-llm-code');
    });
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
    flash(this.copyButton, 'Copied');
  }

  private insert(): void {
    this.host.insertIntoNotebook(this.markdown()).catch(error => this.errors.show(error));
  }

  dispose(): void {
    this.setStage(null);
    this.renderer.dispose();
  }
}

/**
 * The browser storage key of the open conversation's id (per server, so two servers do not
 * mix); the conversation itself is saved on the server, per user.
 */
function storageKey(): string {
  return `jupyter-llm:conversation:${PageConfig.getBaseUrl()}`;
}

/** Remember (or forget, with null) the open conversation's id in the browser. */
function remember(id: string | null): void {
  try {
    if (id) {
      window.localStorage.setItem(storageKey(), id);
    } else {
      window.localStorage.removeItem(storageKey());
    }
  } catch {
    // storage disabled: a reload starts a new chat (the saved ones stay in the list)
  }
}

/** The turns as the messages the server saves. */
function toMessages(turns: ISavedTurn[]): api.ISavedMessage[] {
  return turns.flatMap(t => [
    { role: 'user' as const, content: t.question },
    {
      role: 'assistant' as const,
      content: t.answer,
      model: t.model,
      label: t.label,
      note: t.note,
      citations: t.citations,
      request_id: t.requestId ?? null,
      rating: t.rating ?? null
    }
  ]);
}

/** Saved messages as turns (a question and the answer after it). */
function toTurns(messages: api.ISavedMessage[]): ISavedTurn[] {
  const turns: ISavedTurn[] = [];
  messages.forEach((m, i) => {
    if (m.role !== 'user') {
      return;
    }
    const a = messages[i + 1]?.role === 'assistant' ? messages[i + 1] : null;
    turns.push({
      question: m.content,
      label: a?.label ?? a?.model ?? 'assistant',
      answer: a?.content ?? '',
      note: a?.note ?? '',
      model: a?.model ?? '',
      citations: a?.citations ?? [],
      requestId: a?.request_id ?? null,
      rating: a?.rating ?? null
    });
  });
  return turns;
}

/** `3 min ago`, `yesterday`, or a date, for the list of saved conversations. */
function when(epoch: number): string {
  const s = Date.now() / 1000 - epoch;
  if (s < 60) {
    return 'just now';
  }
  if (s < 3600) {
    return `${Math.round(s / 60)} min ago`;
  }
  if (s < 86400) {
    return `${Math.round(s / 3600)} h ago`;
  }
  return new Date(epoch * 1000).toLocaleDateString();
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
  private readonly turns: ISavedTurn[] = [];
  private abort: AbortController | null = null;
  /** The id of this conversation on the server (null until its first answer is saved). */
  private conversationId: string | null = null;
  private saving: Promise<void> = Promise.resolve();
  private readonly savedList: HTMLElement;
  private readonly savedToggle: HTMLButtonElement;
  private readonly savedStatus: HTMLElement;
  private shownDefaultModel = '';
  private shownDefaultCollection = '';

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
    this.savedList = h('ul', { class: 'jp-llm-conversations', 'aria-label': 'Saved conversations', hidden: true });
    this.savedStatus = h('div', { class: 'jp-llm-conversations-status', role: 'status' });
    this.savedToggle = button('Saved chats', () => void this.toggleSaved(), {
      ariaLabel: 'Show saved conversations',
      cls: 'jp-llm-small'
    });
    this.savedToggle.setAttribute('aria-expanded', 'false');
    // The message box comes before the conversation in the DOM (and so in Tab order); CSS
    // `order` still draws it below the conversation.
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
      h(
        'div',
        { class: 'jp-llm-composer' },
        this.input,
        h(
          'div',
          { class: 'jp-llm-actions' },
          this.sendButton,
          this.stopButton,
          button('New chat', () => this.clear(), { ariaLabel: 'Start a new chat' }),
          this.savedToggle
        )
      ),
      h('div', { class: 'jp-llm-saved' }, this.savedStatus, this.savedList),
      this.transcript
    );
    state.changed.connect(() => this.renderPickers());
    this.renderPickers();
    void this.restore();
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
    this.collectionSelect.dataset.touched = '1';
  }

  /** Focus the message box. */
  focusInput(): void {
    this.input.focus();
  }

  /** Put a draft question in the message box (selecting its first line) and focus it. */
  draft(text: string): void {
    this.input.value = text;
    this.input.focus();
    const firstLine = text.indexOf('\n');
    this.input.setSelectionRange(0, firstLine < 0 ? text.length : firstLine);
  }

  private renderPickers(): void {
    // A new default (set in Models or the settings) wins over an earlier pick.
    if (this.state.defaultModel !== this.shownDefaultModel) {
      this.shownDefaultModel = this.state.defaultModel;
      delete this.modelSelect.dataset.touched;
    }
    if (this.state.defaultCollection !== this.shownDefaultCollection) {
      this.shownDefaultCollection = this.state.defaultCollection;
      delete this.collectionSelect.dataset.touched;
    }
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

  private addQuestion(question: string): void {
    this.transcript.append(
      h(
        'div',
        { class: 'jp-llm-message jp-llm-user', 'aria-label': 'You' },
        h('div', { class: 'jp-llm-message-role' }, 'You'),
        h('div', { class: 'jp-llm-message-body' }, question)
      )
    );
  }

  private addAnswer(label: string, question: string): AssistantMessage {
    const answer = new AssistantMessage(this.host, this.errors, label);
    answer.question = question;
    this.answers.push(answer);
    this.transcript.append(answer.node);
    return answer;
  }

  /**
   * Stages before the first word: retrieving (grounded) or starting, waiting in line (the
   * stream's `queued` lines: place and expected wait), then the model reading the question.
   */
  private stages(answer: AssistantMessage, model: string | null, collection: string): {
    opened(): void;
    queued(place: api.IQueued): void;
  } {
    const name = model || 'the default model';
    let place: api.IQueued | null = null;
    let opened = false;
    const first = collection ? `Finding passages in ${collection}…` : `Starting ${name}…`;
    const show = (): void => {
      if (answer.text) {
        return;
      }
      const waiting = place !== null && place.position > 0;
      const stage = waiting ? 'queued' : opened ? 'generating' : collection ? 'retrieving' : 'starting';
      const text = waiting ? waitingText(name, place!) : null;
      if (answer.node.dataset.stage === stage && answer.node.dataset.place === (text ?? '')) {
        return;
      }
      answer.node.dataset.place = text ?? '';
      answer.setStage(() => {
        if (text) {
          return text;
        }
        return opened ? `${name} is reading the ${collection ? 'passages and the ' : ''}question…` : first;
      }, stage);
    };
    show();
    return {
      opened: () => {
        opened = true;
        show();
      },
      queued: (p: api.IQueued) => {
        place = p;
        show();
      }
    };
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
    this.addQuestion(question);
    const label = `${model ?? 'default model'}${collection ? ` · ${collection}` : ''}`;
    const answer = this.addAnswer(label, question);
    answer.model = model ?? '';
    this.transcript.scrollTop = this.transcript.scrollHeight;
    this.abort = new AbortController();
    this.setStreaming(true);
    const stages = this.stages(answer, model, collection);
    let summary: api.IChatLine = {};
    let opened = false;
    const onLine = (line: api.IChatLine): void => {
      if (line.queued) {
        stages.queued(line.queued);
      }
      if (line.delta) {
        answer.append(line.delta);
        this.transcript.scrollTop = this.transcript.scrollHeight;
      }
      if (line.citations) {
        answer.setCitations(shownCitations(line));
      }
      if (line.done) {
        summary = line;
        if (typeof line.answer === 'string' && line.answer !== answer.text) {
          answer.replace(line.answer); // the model's answer was replaced; the note says why
        }
      }
    };
    const onOpen = (): void => {
      opened = true;
      stages.opened();
    };
    let note = '';
    let stopped = false;
    try {
      if (collection) {
        await api.ask(collection, question, model, onLine, this.abort.signal, onOpen);
      } else {
        const messages: api.IMessage[] = [...this.history, { role: 'user', content: question }];
        await api.chat(model, messages, onLine, this.abort.signal, onOpen);
      }
      this.history.push({ role: 'user', content: question }, { role: 'assistant', content: answer.text });
      answer.model = summary.model ?? answer.model;
      answer.requestId = summary.request_id ?? null;
      note = this.describe(summary);
      ErrorBox.succeeded();
    } catch (error) {
      if (error instanceof APIError && error.type === 'cancelled') {
        stopped = true;
        note = opened || answer.text ? 'Stopped.' : 'Stopped before the answer started.';
      } else {
        this.errors.show(error, () => this.send(question));
        note = 'No answer.';
      }
    } finally {
      this.abort = null;
      this.setStreaming(false);
    }
    const turn: ISavedTurn = {
      question,
      label,
      answer: answer.text,
      note,
      model: answer.model,
      citations: answer.citations,
      requestId: answer.requestId
    };
    answer.onRated = () => {
      turn.rating = answer.rating;
      void this.save();
    };
    await answer.finish(note);
    this.turns.push(turn);
    void this.save();
    this.transcript.scrollTop = this.transcript.scrollHeight;
    if (stopped) {
      this.input.focus(); // the Stop button is disabled now: keep the keyboard in the chat
    }
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
    for (const w of s.warnings ?? []) {
      parts.push(`⚠ ${w.message}`);
    }
    return parts.join(' · ');
  }

  /**
   * Save the conversation on the server (the first save creates it; later ones replace its
   * messages); saves run one after another, so a new conversation is created once.
   */
  private save(): Promise<void> {
    if (!this.turns.length) {
      return this.saving;
    }
    const messages = toMessages(this.turns);
    const body = { messages, model: this.model || null, collection: this.collection || null };
    this.saving = this.saving.then(async () => {
      try {
        const saved = await api.saveConversation(this.conversationId, body);
        this.conversationId = saved.id;
        this.node.dataset.conversation = saved.id;
        remember(saved.id);
        if (!this.savedList.hidden) {
          await this.renderSaved();
        }
      } catch (error) {
        this.errors.show(error);
      }
    });
    return this.saving;
  }

  /** Reopen the conversation that was open before a reload (saved on the server). */
  private async restore(): Promise<void> {
    let id: string | null = null;
    try {
      id = window.localStorage.getItem(storageKey());
    } catch {
      return;
    }
    if (!id) {
      return;
    }
    try {
      this.showConversation(await api.getConversation(id));
    } catch (error) {
      if (error instanceof APIError && error.status === 404) {
        remember(null); // deleted meanwhile, or another user's
      } else {
        this.errors.show(error);
      }
    }
  }

  /** Show a saved conversation in place of the current one and continue it. */
  private showConversation(conversation: api.IConversation): void {
    this.clear(false);
    this.conversationId = conversation.id;
    this.node.dataset.conversation = conversation.id;
    remember(conversation.id);
    for (const t of toTurns(conversation.messages)) {
      this.addQuestion(t.question);
      const answer = this.addAnswer(t.label, t.question);
      answer.model = t.model;
      answer.text = t.answer;
      answer.setCitations(t.citations ?? []);
      answer.requestId = t.requestId ?? null;
      answer.rating = t.rating ?? null;
      answer.onRated = () => {
        t.rating = answer.rating;
        void this.save();
      };
      void answer.finish(t.note);
      this.history.push({ role: 'user', content: t.question }, { role: 'assistant', content: t.answer });
      this.turns.push(t);
    }
    this.transcript.scrollTop = this.transcript.scrollHeight;
  }

  /** Show or hide the list of saved conversations. */
  private async toggleSaved(): Promise<void> {
    const show = this.savedList.hidden;
    this.savedList.hidden = !show;
    this.savedToggle.setAttribute('aria-expanded', String(show));
    this.savedToggle.setAttribute('aria-label', show ? 'Hide saved conversations' : 'Show saved conversations');
    this.savedStatus.textContent = '';
    if (show) {
      await this.renderSaved();
    }
  }

  /** List the saved conversations: open, export to a notebook, delete. */
  private async renderSaved(): Promise<void> {
    let list: api.IConversationSummary[];
    try {
      list = await api.listConversations();
    } catch (error) {
      this.errors.show(error);
      return;
    }
    if (!list.length) {
      this.savedList.replaceChildren(h('li', { class: 'jp-llm-empty' },
        'No saved conversations yet: each answer is saved as you chat.'));
      return;
    }
    this.savedList.replaceChildren(...list.map(c => {
      const current = c.id === this.conversationId;
      const open = button(c.title, () => void this.open(c.id), {
        ariaLabel: `Open conversation: ${c.title}`,
        cls: 'jp-llm-conversation-title'
      });
      const exportButton = button('Export', () => void this.exportNotebook(c, exportButton), {
        ariaLabel: `Export conversation to a notebook: ${c.title}`,
        cls: 'jp-llm-small'
      });
      const remove = button('Delete', () => void this.remove(c), {
        ariaLabel: `Delete conversation: ${c.title}`,
        cls: 'jp-llm-small'
      });
      const turns = Math.ceil(c.message_count / 2);
      return h('li', {
        class: `jp-llm-conversation${current ? ' jp-mod-current' : ''}`,
        'data-id': c.id,
        'aria-current': current ? 'true' : undefined
      }, open, h('span', { class: 'jp-llm-stats' },
        `${turns} question${turns === 1 ? '' : 's'} · ${when(c.updated_at)}`), exportButton, remove);
    }));
  }

  private async open(id: string): Promise<void> {
    if (this.abort) {
      return;
    }
    try {
      this.showConversation(await api.getConversation(id));
      await this.renderSaved();
      this.input.focus();
    } catch (error) {
      this.errors.show(error);
    }
  }

  private async exportNotebook(c: api.IConversationSummary, b: HTMLButtonElement): Promise<void> {
    try {
      const path = await api.exportConversation(c.id);
      this.savedStatus.textContent = `Exported to ${path}`;
      flash(b, 'Exported');
      await this.host.openNotebook(path);
    } catch (error) {
      this.errors.show(error);
    }
  }

  private async remove(c: api.IConversationSummary): Promise<void> {
    const result = await showDialog({
      title: 'Delete this conversation?',
      body: `“${c.title}” is deleted from the server; notebooks exported from it stay.`,
      buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: 'Delete' })]
    });
    if (!result.button.accept) {
      return;
    }
    try {
      await api.deleteConversation(c.id);
      if (c.id === this.conversationId) {
        this.clear();
      }
      this.savedStatus.textContent = `Deleted “${c.title}”.`;
      await this.renderSaved();
    } catch (error) {
      this.errors.show(error);
    }
  }

  /** Stop the answer being streamed. */
  stop(): void {
    this.abort?.abort();
  }

  /** Start a new conversation (the saved one stays in the list). */
  clear(forget = true): void {
    this.stop();
    if (forget) {
      this.conversationId = null;
      delete this.node.dataset.conversation;
      remember(null);
    }
    for (const a of this.answers) {
      a.dispose();
    }
    this.answers.length = 0;
    this.history.length = 0;
    this.turns.length = 0;
    this.transcript.replaceChildren();
    this.errors.clear();
  }

  private setStreaming(on: boolean): void {
    this.sendButton.disabled = on;
    this.stopButton.disabled = !on;
    this.node.classList.toggle('jp-mod-streaming', on);
  }
}
