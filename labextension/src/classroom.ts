/**
 * The Class section: the user's own usage against the classroom policy's limits (everyone),
 * and for roles that see everyone's history (instructors, admins) the history filtered by
 * user, collection, model and date, statistics per student, and CSV/JSONL export.
 */
import { Widget } from '@lumino/widgets';
import { Message } from '@lumino/messaging';

import * as api from './api';
import { button, ErrorBox, formatSeconds, h } from './dom';
import { LLMState } from './state';

/** `1 hour`, `30 min`, `1 day`: a limit's window in words. */
export function windowText(seconds: number | undefined): string {
  const s = seconds ?? 3600;
  if (s % 86400 === 0) {
    return s === 86400 ? 'day' : `${s / 86400} days`;
  }
  if (s % 3600 === 0) {
    return s === 3600 ? 'hour' : `${s / 3600} hours`;
  }
  if (s % 60 === 0) {
    return `${s / 60} min`;
  }
  return formatSeconds(s);
}

/** Lines saying what the user used of each limit ("3 of 30 requests per hour"). */
export function usageLines(me: api.IMe): string[] {
  const { usage } = me;
  const limits = usage.limits ?? {};
  const per = `per ${windowText(limits.window)}`;
  const lines: string[] = [];
  const line = (used: number, max: number | null | undefined, what: string): void => {
    lines.push(max === null || max === undefined
      ? `${used} ${what} in the last ${windowText(limits.window)} (no limit)`
      : `${used} of ${max} ${what} ${per}`);
  };
  line(usage.requests, limits.requests, 'requests');
  line(usage.tokens, limits.tokens, 'tokens');
  if (limits.concurrent) {
    lines.push(`${usage.running} of ${limits.concurrent} at a time running now`);
  }
  return lines;
}

/** Epoch seconds of a `YYYY-MM-DD` date input at local midnight (`endOfDay`: the next one). */
export function dateToEpoch(value: string, endOfDay = false): number | undefined {
  if (!value) {
    return undefined;
  }
  const [y, m, d] = value.split('-').map(Number);
  return new Date(y, m - 1, d + (endOfDay ? 1 : 0)).getTime() / 1000;
}

/** Save text as a file download in the browser. */
function download(text: string, filename: string, type: string): void {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = h('a', { href: url, download: filename, hidden: true });
  document.body.append(a);
  a.click();
  a.remove();
  window.setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

function feedbackText(e: api.IHistoryEntry): string {
  const parts: string[] = [];
  if (e.rating === 1) {
    parts.push('👍');
  } else if (e.rating === -1) {
    parts.push('👎');
  }
  if (e.score !== null && e.score !== undefined) {
    parts.push(`${e.score}/10`);
  }
  if (e.comment) {
    parts.push(`“${e.comment}”`);
  }
  return parts.join(' ');
}

function table(caption: string, head: string[], rows: (string | number)[][], cls: string): HTMLElement {
  return h(
    'table',
    { class: `jp-llm-table ${cls}` },
    h('caption', {}, caption),
    h('thead', {}, h('tr', {}, ...head.map(x => h('th', { scope: 'col' }, x)))),
    h('tbody', {}, ...rows.map(r => h('tr', {}, ...r.map(c => h('td', {}, String(c))))))
  );
}

/** The Class section of the side panel. */
export class ClassSection extends Widget {
  readonly errors = new ErrorBox();
  private readonly who: HTMLElement;
  private readonly usage: HTMLElement;
  private readonly instructor: HTMLElement;
  private readonly stats: HTMLElement;
  private readonly entries: HTMLElement;
  private readonly user: HTMLInputElement;
  private readonly users: HTMLDataListElement;
  private modelChoices: HTMLDataListElement = h('datalist', { id: 'jp-llm-class-models' });
  private collectionChoices: HTMLDataListElement = h('datalist', { id: 'jp-llm-class-collections' });
  private readonly collection: HTMLInputElement;
  private readonly model: HTMLInputElement;
  private readonly since: HTMLInputElement;
  private readonly until: HTMLInputElement;
  /** What the server said about the user, once known. */
  me: api.IMe | null = null;

  constructor(private readonly state: LLMState) {
    super();
    this.addClass('jp-llm-section');
    this.addClass('jp-llm-class');
    this.who = h('div', { class: 'jp-llm-summary', id: 'jp-llm-class-who' });
    this.usage = h('ul', { class: 'jp-llm-usage', 'aria-label': 'Your usage' });
    const field = (id: string, label: string, input: HTMLElement): HTMLElement =>
      h('div', { class: 'jp-llm-field' }, h('label', { class: 'jp-llm-label', for: id }, label), input);
    this.users = h('datalist', { id: 'jp-llm-class-users' });
    this.user = h('input', { id: 'jp-llm-class-user', class: 'jp-llm-input', type: 'search',
      placeholder: 'everyone' });
    this.user.setAttribute('list', 'jp-llm-class-users');
    this.collection = h('input', { id: 'jp-llm-class-collection', class: 'jp-llm-input',
      type: 'search', placeholder: 'any' });
    this.model = h('input', { id: 'jp-llm-class-model', class: 'jp-llm-input', type: 'search',
      placeholder: 'any' });
    this.model.setAttribute('list', 'jp-llm-class-models');
    this.collection.setAttribute('list', 'jp-llm-class-collections');
    this.since = h('input', { id: 'jp-llm-class-since', class: 'jp-llm-input', type: 'date' });
    this.until = h('input', { id: 'jp-llm-class-until', class: 'jp-llm-input', type: 'date' });
    const onEnter = (e: KeyboardEvent): void => {
      if (e.key === 'Enter') {
        e.preventDefault();
        void this.showHistory();
      }
    };
    for (const input of [this.user, this.collection, this.model, this.since, this.until]) {
      input.addEventListener('keydown', onEnter);
    }
    this.stats = h('div', { class: 'jp-llm-class-stats' });
    this.entries = h('div', { class: 'jp-llm-class-entries' });
    this.instructor = h(
      'section',
      { class: 'jp-llm-class-instructor', id: 'jp-llm-class-instructor', hidden: true,
        'aria-label': 'Instructor view' },
      h('h3', { class: 'jp-llm-heading' }, 'Instructor view'),
      h(
        'form',
        { class: 'jp-llm-class-filters', 'aria-label': 'History filters',
          onsubmit: (e: Event) => {
            e.preventDefault();
            void this.showHistory();
          } },
        field('jp-llm-class-user', 'Student', this.user),
        this.users,
        this.modelChoices,
        this.collectionChoices,
        field('jp-llm-class-collection', 'Collection', this.collection),
        field('jp-llm-class-model', 'Model', this.model),
        field('jp-llm-class-since', 'From', this.since),
        field('jp-llm-class-until', 'To', this.until)
      ),
      h(
        'div',
        { class: 'jp-llm-actions' },
        button('Show', () => void this.showHistory(), { ariaLabel: 'Show the history with these filters', primary: true }),
        button('Export CSV', () => void this.export('csv'), { ariaLabel: 'Export the history as CSV' }),
        button('Export JSONL', () => void this.export('jsonl'), { ariaLabel: 'Export the history as JSONL' })
      ),
      this.stats
    );
    this.node.append(
      h(
        'div',
        { class: 'jp-llm-toolbar' },
        h('h3', { class: 'jp-llm-heading' }, 'Your usage'),
        button('↻', () => void this.refresh(), { ariaLabel: 'Refresh the class view', cls: 'jp-llm-icon-button' })
      ),
      this.errors.node,
      this.who,
      this.usage,
      this.instructor,
      this.entries
    );
  }

  /** The filters of the instructor's view. */
  filters(): api.IHistoryFilters {
    return {
      user: this.user.value.trim() || undefined,
      collection: this.collection.value.trim() || undefined,
      model: this.model.value.trim() || undefined,
      since: dateToEpoch(this.since.value),
      until: dateToEpoch(this.until.value, true)
    };
  }

  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    void this.refresh();
  }

  /** Reload who the user is, their usage and (for instructors) the history and stats. */
  async refresh(): Promise<void> {
    try {
      const me = await api.me();
      this.me = me;
      this.renderMe(me);
    } catch (error) {
      this.errors.show(error);
      return;
    }
    await this.showHistory();
  }

  private renderMe(me: api.IMe): void {
    const guard = me.tutoring_guard ? ' Answers are tutoring hints, not complete solutions.' : '';
    this.who.textContent = `Signed in as ${me.name} (${me.role}).${guard}`;
    const models = me.models && !me.models.includes('*')
      ? `Models you may use: ${me.models.join(', ')}`
      : 'You may use every model.';
    this.usage.replaceChildren(...usageLines(me).map(l => h('li', {}, l)), h('li', {}, models));
    this.instructor.hidden = me.history !== 'all';
    const options = (id: string, values: string[]): HTMLDataListElement =>
      h('datalist', { id }, ...values.map(v => h('option', { value: v })));
    this.modelChoices.replaceWith(this.modelChoices = options('jp-llm-class-models',
      this.state.models.map(m => m.id)));
    this.collectionChoices.replaceWith(this.collectionChoices = options('jp-llm-class-collections',
      this.state.collections.map(c => c.name)));
    this.node.dataset.role = me.role;
  }

  /** Show the history (and, for instructors, the stats) with the current filters. */
  async showHistory(): Promise<void> {
    const me = this.me;
    if (!me || me.history === 'none') {
      this.entries.replaceChildren();
      return;
    }
    const all = me.history === 'all';
    const filters = all ? this.filters() : {};
    try {
      const [entries, stats] = await Promise.all([
        api.history(filters),
        all ? api.historyStats(filters) : Promise.resolve(null)
      ]);
      if (stats) {
        this.renderStats(stats.users);
      }
      this.renderEntries(entries, all);
      ErrorBox.succeeded();
    } catch (error) {
      this.errors.show(error);
    }
  }

  private renderStats(users: Record<string, api.IStatsRow>): void {
    const names = Object.keys(users).sort();
    this.users.replaceChildren(...names.map(n => h('option', { value: n })));
    const rows = names.map(n => {
      const r = users[n];
      return [n, r.requests, r.prompt_tokens + r.completion_tokens, r.refusals, r.thumbs_up,
        r.thumbs_down, r.mean_score === null || r.mean_score === undefined ? '' : r.mean_score.toFixed(1)];
    });
    this.stats.replaceChildren(
      rows.length
        ? table('Per student', ['Student', 'Requests', 'Tokens', 'Refused', '👍', '👎', 'Score'],
          rows, 'jp-llm-class-stats-table')
        : h('p', { class: 'jp-llm-summary' }, 'No requests match these filters.')
    );
  }

  private renderEntries(entries: api.IHistoryEntry[], all: boolean): void {
    const when = (t: number): string => new Date(t * 1000).toLocaleString();
    const rows = entries.map(e => {
      const tokens = (e.prompt_tokens ?? 0) + (e.completion_tokens ?? 0);
      const row: (string | number)[] = [when(e.created_at)];
      if (all) {
        row.push(e.user ?? '');
      }
      row.push(e.model ?? '', e.collection ?? '', tokens || '', e.error ?? '', feedbackText(e));
      return row;
    });
    const head = ['When', ...(all ? ['Student'] : []), 'Model', 'Collection', 'Tokens',
      'Error', 'Feedback'];
    this.entries.replaceChildren(
      rows.length
        ? table(all ? 'Recent requests' : 'Your recent requests', head, rows, 'jp-llm-class-history')
        : h('p', { class: 'jp-llm-summary' }, all ? '' : 'You have not asked anything yet.')
    );
  }

  /** Download the filtered history as CSV or JSONL. */
  async export(format: 'csv' | 'jsonl'): Promise<void> {
    try {
      const { text, filename } = await api.exportHistory(format, this.filters());
      download(text, filename, format === 'csv' ? 'text/csv' : 'application/x-ndjson');
    } catch (error) {
      this.errors.show(error);
    }
  }
}
