/**
 * Typed calls of the native REST API (see docs/rest.md); all go through `requestAPI` and
 * `streamAPI`.
 */
import { requestAPI, requestText, streamAPI } from './request';

/** A model's state on this server. */
export type ModelState = 'available' | 'downloading' | 'installed' | 'loaded';

/** A registry model with its state (`GET llm/api/models`). */
export interface IModel {
  id: string;
  name?: string;
  family?: string;
  backend: string;
  tags?: string[];
  size_bytes?: number | null;
  context_length?: number | null;
  quantization?: string | null;
  ram_bytes?: number | null;
  license?: string | null;
  description?: string | null;
  state: ModelState;
  /** From the user's own registry (not the built-in one). */
  own?: boolean;
  /** False when the model cannot answer yet (e.g. a remote model without its API key). */
  usable?: boolean;
  /** What would make it usable (`{"action": "set_key", "env", "model"}`). */
  hint?: { action: string; env?: string; [key: string]: unknown } | null;
  api_key_env?: string | null;
  /** False when the classroom policy does not let this user use the model. */
  allowed?: boolean;
  [key: string]: unknown;
}

/** One progress line of a download (`POST llm/api/pull`). */
export interface IPullProgress {
  model_id: string;
  done_bytes?: number;
  total_bytes?: number | null;
  rate_bytes_per_s?: number | null;
  eta_s?: number | null;
  status: string;
  message?: string | null;
  manifest?: unknown;
}

/** A loaded model (`GET llm/api/ps`). */
export interface IPsEntry {
  id: string;
  backend: string;
  memory_bytes?: number | null;
  queue_depth?: number;
  last_used?: number | string | null;
  expires_at?: number | string | null;
}

/** A chat message. */
export interface IMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

/** A citation of a grounded answer (`jupyter_llm.retrieval.Citation`). */
export interface ICitation {
  n: number;
  source: string;
  path: string;
  title?: string;
  heading?: string;
  start_line?: number | null;
  end_line?: number | null;
  cell_index?: number | null;
  page?: number | null;
}

/** Where a request waits for its model: 1 is next; 0 once its turn came. */
export interface IQueued {
  position: number;
  expected_wait_s: number;
}

/**
 * One line of a chat or ask stream: a text delta, the request's place in line while it waits
 * for the model, the final summary, or citations.
 */
export interface IChatLine {
  delta?: string;
  queued?: IQueued;
  done?: boolean;
  model?: string;
  finish_reason?: string;
  usage?: { prompt_tokens?: number; completion_tokens?: number; total_tokens?: number } | null;
  timings?: Record<string, number> | null;
  citations?: ICitation[];
  /** The citation numbers the answer actually uses. */
  cited?: number[];
  supported?: boolean;
  /** True when no model answered and the passages themselves are the answer. */
  retrieval_only?: boolean;
  note?: string | null;
  /** A grounded answer's shown text (replaces the streamed text when they differ). */
  answer?: string;
  /** Whether the model's answer cited valid sources, and what is shown instead. */
  citation_check?: {
    valid: boolean;
    reason?: string | null;
    action?: string;
    cited?: number[] | null;
    invalid?: number[] | null;
    model_text?: string | null;
  } | null;
  /** The history entry of this answer (for feedback); absent when it was not logged. */
  request_id?: string | null;
  /** What the user should know about this answer (no chat template, oldest turns left out). */
  warnings?: { type: string; message: string; details?: Record<string, unknown> }[];
}

/** A collection (`GET llm/api/collections`). */
export interface ICollection {
  name: string;
  path?: string;
  documents?: number;
  chunks?: number;
  embedding_model?: string;
  vector_backend?: string;
  updated_at?: string | number | null;
  error?: string;
}

/** One progress line of an ingest, or its final summary. */
export interface IIngestLine {
  done?: number | boolean;
  total?: number;
  path?: string;
  status?: string;
  chunks?: number;
  error?: string | null;
  summary?: string;
  [key: string]: unknown;
}

/** A search hit (`POST llm/api/collections/{name}/search`). */
export interface ISearchResult {
  source: string;
  path?: string;
  text: string;
  score: number;
  heading?: string;
  start_line?: number | null;
  end_line?: number | null;
  cell_index?: number | null;
  page?: number | null;
}

/** The server's non-secret settings (`GET llm/api/config`). */
export interface IServerConfig {
  version?: string;
  data_dir?: string;
  root_dir?: string;
  settings?: Record<string, unknown>;
}

const enc = encodeURIComponent;

/** The registry with each model's state, optionally only those with `tag`. */
export async function listModels(tag?: string): Promise<IModel[]> {
  const query = tag ? `?tag=${enc(tag)}` : '';
  return (await requestAPI<{ models: IModel[] }>(`models${query}`)).models;
}

/** The loaded models with their memory use. */
export async function listLoaded(): Promise<IPsEntry[]> {
  return (await requestAPI<{ models: IPsEntry[] }>('ps')).models;
}

/** The running downloads with their latest progress. */
export async function listDownloads(): Promise<IPullProgress[]> {
  return (await requestAPI<{ downloads: IPullProgress[] }>('downloads')).downloads;
}

/** Download a model, reporting each progress line; resolves on `done`. */
export async function pull(
  model: string,
  onProgress: (p: IPullProgress) => void,
  signal?: AbortSignal
): Promise<void> {
  await streamAPI<IPullProgress>('pull', { model, stream: true }, onProgress, signal);
}

/** Cancel a running download (the partial file is kept for resuming). */
export async function cancelPull(model: string): Promise<boolean> {
  return (await requestAPI<{ cancelled: boolean }>('pull/cancel', {
    method: 'POST',
    body: { model }
  })).cancelled;
}

/** Load a model into memory now. */
export async function load(model: string): Promise<IPsEntry> {
  return requestAPI<IPsEntry>('load', { method: 'POST', body: { model } });
}

/** Unload a model and free its memory. */
export async function unload(model: string): Promise<boolean> {
  return (await requestAPI<{ unloaded: boolean }>('unload', {
    method: 'POST',
    body: { model }
  })).unloaded;
}

/** Delete an installed model's files. */
export async function removeModel(model: string): Promise<boolean> {
  return (await requestAPI<{ removed: boolean }>(`models/${enc(model)}`, {
    method: 'DELETE'
  })).removed;
}

/** Stream a chat answer; `model` null means the server's default. */
export async function chat(
  model: string | null,
  messages: IMessage[],
  onLine: (line: IChatLine) => void,
  signal?: AbortSignal,
  onOpen?: () => void
): Promise<void> {
  await streamAPI<IChatLine>('chat', { model, messages, stream: true }, onLine, signal,
    undefined, onOpen);
}

/** Stream an answer grounded on a collection, with citations. */
export async function ask(
  collection: string,
  question: string,
  model: string | null,
  onLine: (line: IChatLine) => void,
  signal?: AbortSignal,
  onOpen?: () => void
): Promise<void> {
  await streamAPI<IChatLine>(
    `collections/${enc(collection)}/ask`,
    { question, model, stream: true },
    onLine,
    signal,
    undefined,
    onOpen
  );
}

/** The collections on this server. */
export async function listCollections(): Promise<ICollection[]> {
  return (await requestAPI<{ collections: ICollection[] }>('collections')).collections;
}

/** Create an empty collection. */
export async function createCollection(name: string): Promise<ICollection> {
  return requestAPI<ICollection>('collections', { method: 'POST', body: { name } });
}

/** A document of a collection (`GET llm/api/collections/{name}/documents`). */
export interface IDocument {
  /** Relative to the server's root_dir (as users see it). */
  source: string;
  /** The file on the server. */
  path: string;
  title?: string | null;
  kind?: string | null;
  size?: number | null;
  n_chunks?: number | null;
  ingested_at?: number | null;
}

/** The documents of a collection, by path. */
export async function listDocuments(collection: string): Promise<IDocument[]> {
  return (await requestAPI<{ documents: IDocument[] }>(`collections/${enc(collection)}/documents`))
    .documents;
}

/** Delete a collection (its index; the source files stay). */
export async function deleteCollection(name: string): Promise<boolean> {
  return (await requestAPI<{ removed: boolean }>(`collections/${enc(name)}`, {
    method: 'DELETE'
  })).removed;
}

/** Ingest files or folders (server file-system paths) into a collection, with progress. */
export async function ingest(
  collection: string,
  paths: string[],
  onLine: (line: IIngestLine) => void,
  signal?: AbortSignal
): Promise<void> {
  await streamAPI<IIngestLine>(`collections/${enc(collection)}/ingest`, { paths }, onLine,
    signal);
}

/** Search a collection. */
export async function search(
  collection: string,
  query: string,
  k = 5,
  mode: 'dense' | 'lexical' | 'hybrid' = 'hybrid'
): Promise<{ supported?: boolean; results: ISearchResult[] }> {
  return requestAPI(`collections/${enc(collection)}/search`, {
    method: 'POST',
    body: { query, k, mode }
  });
}

/** The server's version and settings. */
export async function serverConfig(): Promise<IServerConfig> {
  return requestAPI<IServerConfig>('config');
}

/** A limit of the classroom policy (null: none). */
export interface ILimits {
  requests?: number | null;
  tokens?: number | null;
  /** The window in seconds. */
  window?: number;
  concurrent?: number | null;
}

/** Who the user is and what the policy lets them do (`GET llm/api/me`). */
export interface IMe {
  name: string;
  role: string;
  /** Which history the role sees: `own`, `all` or `none`. */
  history: string;
  export: boolean;
  manage_tokens?: boolean;
  tutoring_guard?: boolean;
  /** The model patterns the role may use. */
  models?: string[];
  usage: { requests: number; tokens: number; running: number; limits: ILimits };
  policy_error?: string | null;
}

/** One request of the history (`GET llm/api/history`). */
export interface IHistoryEntry {
  id: number;
  /** Epoch seconds. */
  created_at: number;
  user?: string | null;
  model?: string | null;
  face?: string | null;
  collection?: string | null;
  prompt_tokens?: number | null;
  completion_tokens?: number | null;
  error?: string | null;
  rating?: number | null;
  score?: number | null;
  comment?: string | null;
  request_id?: string | null;
  [key: string]: unknown;
}

/** The history filters of the instructor's view. */
export interface IHistoryFilters {
  user?: string;
  collection?: string;
  model?: string;
  /** Epoch seconds. */
  since?: number;
  until?: number;
}

/** Statistics of one user (or model) in `GET llm/api/history/stats`. */
export interface IStatsRow {
  requests: number;
  errors: number;
  refusals: number;
  prompt_tokens: number;
  completion_tokens: number;
  thumbs_up: number;
  thumbs_down: number;
  mean_score?: number | null;
  [key: string]: unknown;
}

/** Feedback on an answer. */
export interface IFeedback {
  rating?: number | null;
  score?: number | null;
  comment?: string | null;
}

function query(filters: IHistoryFilters & Record<string, unknown>): string {
  const parts = Object.entries(filters)
    .filter(([, v]) => v !== undefined && v !== null && v !== '')
    .map(([k, v]) => `${enc(k)}=${enc(String(v))}`);
  return parts.length ? `?${parts.join('&')}` : '';
}

/** Who the user is, their role, and their usage of the policy's limits. */
export async function me(): Promise<IMe> {
  return requestAPI<IMe>('me');
}

/** The history the user may see, newest first. */
export async function history(filters: IHistoryFilters = {}, limit = 50): Promise<IHistoryEntry[]> {
  return (await requestAPI<{ entries: IHistoryEntry[] }>(`history${query({ ...filters, limit })}`))
    .entries;
}

/** Requests, tokens, refusals and feedback per user. */
export async function historyStats(
  filters: IHistoryFilters = {}
): Promise<{ requests: number; refusals: number; users: Record<string, IStatsRow> }> {
  return requestAPI(`history/stats${query({ ...filters, by: 'user' })}`);
}

/** The filtered history as CSV or JSONL: its text and the file name the server suggests. */
export async function exportHistory(
  format: 'csv' | 'jsonl',
  filters: IHistoryFilters = {}
): Promise<{ text: string; filename: string }> {
  return requestText(`history/export${query({ ...filters, format })}`, `history.${format}`);
}

/** Rate an answer (its history entry, or the `request_id` its response carried). */
export async function feedback(entry: string | number, body: IFeedback): Promise<IHistoryEntry> {
  return requestAPI<IHistoryEntry>(`history/${enc(String(entry))}/feedback`, {
    method: 'POST',
    body
  });
}

/** A saved conversation in the list (`GET llm/api/conversations`). */
export interface IConversationSummary {
  id: string;
  title: string;
  model?: string | null;
  collection?: string | null;
  created_at: number;
  updated_at: number;
  message_count: number;
}

/** A saved message: role and text, plus what the panel shows with an answer. */
export interface ISavedMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
  model?: string;
  label?: string;
  note?: string;
  citations?: ICitation[];
  request_id?: string | null;
  rating?: number | null;
}

/** A saved conversation with its messages. */
export interface IConversation extends IConversationSummary {
  messages: ISavedMessage[];
}

/** Your saved conversations, most recent first. */
export async function listConversations(): Promise<IConversationSummary[]> {
  return (await requestAPI<{ conversations: IConversationSummary[] }>('conversations'))
    .conversations;
}

/** One of your saved conversations with its messages. */
export async function getConversation(id: string): Promise<IConversation> {
  return requestAPI<IConversation>(`conversations/${enc(id)}`);
}

/** Save a new conversation (no id) or replace the messages of one of yours. */
export async function saveConversation(
  id: string | null,
  body: { messages: ISavedMessage[]; model?: string | null; collection?: string | null }
): Promise<IConversation> {
  return id
    ? requestAPI<IConversation>(`conversations/${enc(id)}`, { method: 'PUT', body })
    : requestAPI<IConversation>('conversations', { method: 'POST', body });
}

/** Delete one of your saved conversations. */
export async function deleteConversation(id: string): Promise<boolean> {
  return (await requestAPI<{ deleted: boolean }>(`conversations/${enc(id)}`, {
    method: 'DELETE'
  })).deleted;
}

/** Write a saved conversation as a notebook in the server's root; its path there. */
export async function exportConversation(id: string): Promise<string> {
  return (await requestAPI<{ path: string }>(`conversations/${enc(id)}/export`, {
    method: 'POST',
    body: {}
  })).path;
}
