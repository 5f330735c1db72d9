/**
 * The Chat section: a model picker and an optional collection to ground on; answers stream
 * as Markdown (rendermime); citations open the cited file at the cited place; stop, copy and
 * insert-into-notebook.
 */
import { Clipboard } from '@jupyterlab/apputils';
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
}

/** Where inserted code came from (cell metadata `jupyter_llm`). */
export interface IProvenance {
  model: string;
  created: string;
  question: string;
}

/** One saved turn of the conversation (kept in the browser, so a reload keeps it). */
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

/** The browser storage key of the conversation (per server, so two servers do not mix). */
function storageKey(): string {
  return `jupyter-llm:chat:${PageConfig.getBaseUrl()}`;
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
          button('New chat', () => this.clear(), { ariaLabel: 'Start a new chat' })
        )
      ),
      this.transcript
    );
    state.changed.connect(() => this.renderPickers());
    this.renderPickers();
    this.restore();
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
      this.save();
    };
    await answer.finish(note);
    this.turns.push(turn);
    this.save();
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

  /** Keep the conversation in the browser (a reload shows it again). */
  private save(): void {
    try {
      window.localStorage.setItem(storageKey(), JSON.stringify(this.turns.slice(-50)));
    } catch {
      // storage full or disabled: the conversation just does not survive a reload
    }
  }

  /** Show the conversation saved before a reload. */
  private restore(): void {
    let turns: ISavedTurn[] = [];
    try {
      turns = JSON.parse(window.localStorage.getItem(storageKey()) ?? '[]');
    } catch {
      return;
    }
    if (!Array.isArray(turns)) {
      return;
    }
    for (const t of turns) {
      this.addQuestion(t.question);
      const answer = this.addAnswer(t.label, t.question);
      answer.model = t.model;
      answer.text = t.answer;
      answer.setCitations(t.citations ?? []);
      answer.requestId = t.requestId ?? null;
      answer.rating = t.rating ?? null;
      answer.onRated = () => {
        t.rating = answer.rating;
        this.save();
      };
      void answer.finish(t.note);
      this.history.push({ role: 'user', content: t.question }, { role: 'assistant', content: t.answer });
      this.turns.push(t);
    }
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
    this.turns.length = 0;
    this.save();
    this.transcript.replaceChildren();
    this.errors.clear();
  }

  private setStreaming(on: boolean): void {
    this.sendButton.disabled = on;
    this.stopButton.disabled = !on;
    this.node.classList.toggle('jp-mod-streaming', on);
  }
}
