/**
 * The one way the panel talks to the server: `requestAPI<T>()` for JSON answers and
 * `streamAPI<T>()` for NDJSON streams (pull progress, chat, ingest), both under `llm/api/`.
 *
 * Every failure becomes an `APIError` carrying the `error.message` of the server's JSON
 * envelope `{"error": {"type", "message", "details"}}`, so the UI can show it verbatim.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

/** The API namespace of the jupyter_llm server extension. */
export const API_NAMESPACE = 'llm/api';

/**
 * The structured next step of an error (`details` of the envelope with an `action`):
 * `pull` {model}, `load` {model}, `set_key` {env, model}, `ingest` {collection},
 * `create_collection` {collection}, `completion` {model}, `retry` {retry_after}.
 */
export interface IHint {
  action: string;
  model?: string;
  env?: string;
  collection?: string;
  retry_after?: number;
  [key: string]: unknown;
}

/** An error answered by the server (or a failure to reach it), ready to show to a user. */
export class APIError extends Error {
  /** The stable error type, e.g. `unknown_model`, `network_error`, `cancelled`. */
  readonly type: string;
  /** The HTTP status, or 0 when the server could not be reached. */
  readonly status: number;
  /** Extra details of the envelope (e.g. `fields` of `invalid_options`). */
  readonly details: unknown;
  /** The next step the server suggests (`details.action` and its arguments), if any. */
  get hint(): IHint | null {
    const d = this.details as Record<string, unknown> | null | undefined;
    if (d && typeof d === 'object' && typeof d.action === 'string') {
      return d as unknown as IHint;
    }
    return null;
  }

  constructor(message: string, type: string, status: number, details?: unknown) {
    super(message);
    this.name = 'APIError';
    this.type = type;
    this.status = status;
    this.details = details;
  }
}

/** The server's JSON error envelope. */
interface IErrorEnvelope {
  error: { type?: string; message?: string; details?: unknown };
}

function isEnvelope(data: unknown): data is IErrorEnvelope {
  return (
    typeof data === 'object' &&
    data !== null &&
    'error' in data &&
    typeof (data as IErrorEnvelope).error === 'object' &&
    (data as IErrorEnvelope).error !== null
  );
}

/** Turn an error envelope (from a status or from a stream line) into an `APIError`. */
export function errorFromEnvelope(data: unknown, status: number): APIError {
  if (isEnvelope(data)) {
    const e = data.error;
    return new APIError(
      e.message || `The server answered ${status} (${e.type || 'error'}).`,
      e.type || 'error',
      status,
      e.details
    );
  }
  const text = typeof data === 'string' && data.trim() ? `: ${data.trim().slice(0, 300)}` : '.';
  return new APIError(
    status === 404
      ? 'The jupyter-llm server extension did not answer (404). Is it installed and enabled? ' +
        'Check `jupyter server extension list`.'
      : `The server answered ${status}${text}`,
    'http_error',
    status
  );
}

function settingsOrDefault(settings?: ServerConnection.ISettings): ServerConnection.ISettings {
  return settings ?? ServerConnection.makeSettings();
}

function apiUrl(endPoint: string, settings: ServerConnection.ISettings): string {
  return URLExt.join(settings.baseUrl, API_NAMESPACE, endPoint);
}

async function send(
  endPoint: string,
  init: RequestInit,
  settings: ServerConnection.ISettings
): Promise<Response> {
  try {
    return await ServerConnection.makeRequest(apiUrl(endPoint, settings), init, settings);
  } catch (error) {
    // An abort before the answer starts reaches us as a NetworkError wrapping the
    // AbortError ("signal is aborted without reason"): it is a stop, not a lost server.
    if ((error as Error)?.name === 'AbortError' || init.signal?.aborted) {
      throw new APIError('Stopped.', 'cancelled', 499);
    }
    throw new APIError(
      `Could not reach the Jupyter server: ${(error as Error)?.message ?? error}. ` +
        'Is it still running?',
      'network_error',
      0
    );
  }
}

async function failure(response: Response): Promise<APIError> {
  const text = await response.text();
  let data: unknown = text;
  try {
    data = JSON.parse(text);
  } catch {
    // not JSON: reported as text
  }
  return errorFromEnvelope(data, response.status);
}

/**
 * Call a JSON route of the native API (`llm/api/<endPoint>`); answers the parsed body.
 *
 * @param endPoint the route under `llm/api/`, e.g. `models?tag=CONVERSATIONAL`
 * @param init fetch options; a plain object `body` is sent as JSON
 * @param settings the server settings (default: the page's)
 */
export async function requestAPI<T>(
  endPoint: string,
  init: Omit<RequestInit, 'body'> & { body?: unknown } = {},
  settings?: ServerConnection.ISettings
): Promise<T> {
  const s = settingsOrDefault(settings);
  const { body, ...rest } = init;
  const request: RequestInit = { ...rest };
  if (body !== undefined) {
    request.body = typeof body === 'string' ? body : JSON.stringify(body);
    request.headers = { 'Content-Type': 'application/json', ...(rest.headers ?? {}) };
  }
  const response = await send(endPoint, request, s);
  if (!response.ok) {
    throw await failure(response);
  }
  const text = await response.text();
  if (!text) {
    return {} as T;
  }
  try {
    return JSON.parse(text) as T;
  } catch {
    throw new APIError(`The server sent something that is not JSON: ${text.slice(0, 200)}`,
      'invalid_response', response.status);
  }
}

/**
 * GET a route that answers a file (an export): its text, and the file name of its
 * `Content-Disposition` (else `fallback`).
 */
export async function requestText(
  endPoint: string,
  fallback: string,
  settings?: ServerConnection.ISettings
): Promise<{ text: string; filename: string }> {
  const response = await send(endPoint, {}, settingsOrDefault(settings));
  if (!response.ok) {
    throw await failure(response);
  }
  const disposition = response.headers.get('Content-Disposition') ?? '';
  const match = /filename="?([^";]+)"?/.exec(disposition);
  return { text: await response.text(), filename: match ? match[1] : fallback };
}

/**
 * POST to a streaming route and call `onLine` with each NDJSON line as it arrives.
 *
 * A line of the error envelope (`{"error": {...}}`, or a pull progress line with status
 * `error`) ends the stream with that `APIError`. Aborting `signal` ends it with a
 * `cancelled` error. `onOpen` is called when the server starts answering (its headers).
 */
export async function streamAPI<T>(
  endPoint: string,
  body: unknown,
  onLine: (line: T) => void,
  signal?: AbortSignal,
  settings?: ServerConnection.ISettings,
  onOpen?: () => void
): Promise<void> {
  const s = settingsOrDefault(settings);
  const response = await send(
    endPoint,
    {
      method: 'POST',
      body: JSON.stringify(body),
      headers: { 'Content-Type': 'application/json', Accept: 'application/x-ndjson' },
      signal
    },
    s
  );
  if (!response.ok) {
    throw await failure(response);
  }
  if (!response.body) {
    throw new APIError('The browser cannot read streamed answers.', 'invalid_response', 0);
  }
  onOpen?.();
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  const handle = (raw: string): void => {
    const text = raw.trim();
    if (!text) {
      return;
    }
    let line: unknown;
    try {
      line = JSON.parse(text);
    } catch {
      throw new APIError(`The server sent a line that is not JSON: ${text.slice(0, 200)}`,
        'invalid_response', response.status);
    }
    if (isEnvelope(line)) {
      throw errorFromEnvelope(line, response.status);
    }
    onLine(line as T);
  };
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) {
        break;
      }
      buffer += decoder.decode(value, { stream: true });
      let newline: number;
      while ((newline = buffer.indexOf('\n')) >= 0) {
        const raw = buffer.slice(0, newline);
        buffer = buffer.slice(newline + 1);
        handle(raw);
      }
    }
    handle(buffer + decoder.decode());
  } catch (error) {
    reader.cancel().catch(() => undefined);
    if (error instanceof APIError) {
      throw error;
    }
    if ((error as Error)?.name === 'AbortError' || signal?.aborted) {
      throw new APIError('Stopped.', 'cancelled', 499);
    }
    throw new APIError(`The stream broke off: ${(error as Error)?.message ?? error}`,
      'network_error', 0);
  }
}
