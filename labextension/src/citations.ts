/**
 * Open a cited source in JupyterLab at the cited place: a text file at its lines (selected
 * and scrolled into view), a notebook at its cell.
 */
import { PageConfig } from '@jupyterlab/coreutils';
import { IDocumentManager } from '@jupyterlab/docmanager';

import { ICitation } from './api';

/**
 * Where to open: `source` (relative to the server's root_dir, as the server reports it) or
 * else `path` (absolute on the server), and a place in the file.
 */
export interface ISourcePlace {
  source?: string;
  path: string;
  start_line?: number | null;
  end_line?: number | null;
  cell_index?: number | null;
}

function normalize(path: string): string {
  return path.replace(/\\/g, '/').replace(/\/+$/, '');
}

/** The Jupyter server's root folder as a file-system path ('' if unknown). */
export function serverRoot(): string {
  return normalize(PageConfig.getOption('serverRoot') || '');
}

/**
 * The contents-API path (relative to the server root) of a file-system path; throws with an
 * explanation when the file lies outside the root (JupyterLab cannot open it then).
 */
export function toContentsPath(path: string, root = serverRoot()): string {
  const p = normalize(path);
  const isAbsolute = p.startsWith('/') || /^[A-Za-z]:\//.test(p);
  if (!isAbsolute) {
    return p.replace(/^\.\//, '');
  }
  if (root && (p === root || p.startsWith(root + '/'))) {
    return p.slice(root.length).replace(/^\//, '');
  }
  throw new Error(
    `Cannot open ${path}: it is outside the folder this Jupyter server serves (${root || '?'}). ` +
      'Start JupyterLab in a folder that contains it.'
  );
}

/** The path the server's ingest expects for a contents path: relative to its root_dir. */
export function toIngestPath(contentsPath: string): string {
  return normalize(contentsPath).replace(/^\//, '') || '.';
}

/** `source › heading, lines a–b` */
export function citationLabel(c: ICitation): string {
  const last = c.heading ? c.heading.split(' > ').pop() : '';
  let place = '';
  if (c.start_line) {
    place = c.end_line && c.end_line !== c.start_line
      ? `lines ${c.start_line}–${c.end_line}`
      : `line ${c.start_line}`;
  } else if (c.cell_index !== null && c.cell_index !== undefined) {
    place = `cell ${c.cell_index + 1}`;
  } else if (c.page) {
    place = `page ${c.page}`;
  }
  return [c.source + (last ? ` › ${last}` : ''), place].filter(Boolean).join(', ');
}

interface IPosition {
  line: number;
  column: number;
}

interface IEditorLike {
  setSelection(range: { start: IPosition; end: IPosition }): void;
  setCursorPosition(position: IPosition): void;
  revealPosition?(position: IPosition): void;
  getCoordinateForPosition?(position: IPosition): { top: number; bottom: number } | null;
  getOffsetAt?(position: IPosition): number;
  focus(): void;
  getLine(line: number): string | undefined;
  readonly lineCount: number;
  readonly host?: HTMLElement;
}

const frame = (): Promise<void> => new Promise(resolve => requestAnimationFrame(() => resolve()));

/**
 * Scroll the editor so the lines `start`–`end` sit in the middle of its visible part (their
 * start a third of the way down when they are taller than the view), never at its edge.
 */
export async function centerLines(editor: IEditorLike, start: number, end: number): Promise<void> {
  editor.revealPosition?.({ line: start, column: 0 }); // renders the line (CodeMirror draws lazily)
  const scroller = editor.host?.querySelector('.cm-scroller') as HTMLElement | null;
  if (!scroller || !editor.getCoordinateForPosition) {
    return;
  }
  for (let attempt = 0; attempt < 3; attempt++) {
    await frame();
    const first = editor.getCoordinateForPosition({ line: start, column: 0 });
    const last = editor.getCoordinateForPosition({ line: end, column: 0 }) ?? first;
    const view = scroller.getBoundingClientRect();
    if (!first || !last || view.height <= 0) {
      continue;
    }
    const height = last.bottom - first.top;
    const want = height < view.height * 0.8 ? (view.height - height) / 2 : view.height / 3;
    const delta = first.top - view.top - want;
    if (Math.abs(delta) < 2) {
      return;
    }
    scroller.scrollTop += delta;
  }
}

/** Open `place.path` and go to the cited lines or cell. */
export async function openSource(docManager: IDocumentManager, place: ISourcePlace): Promise<void> {
  const relative = place.source && !/^([A-Za-z]:)?[\\/]/.test(place.source);
  const path = relative ? toContentsPath(place.source as string) : toContentsPath(place.path);
  const isNotebook = path.toLowerCase().endsWith('.ipynb');
  const widget = docManager.openOrReveal(path, isNotebook ? 'default' : 'Editor');
  if (!widget) {
    throw new Error(`JupyterLab could not open ${path}. Does the file still exist?`);
  }
  await widget.context.ready;
  await widget.revealed;
  const content = (widget as unknown as { content: Record<string, unknown> }).content;
  if (!content) {
    return;
  }
  if (isNotebook && typeof place.cell_index === 'number') {
    const nb = content as unknown as {
      activeCellIndex: number;
      scrollToItem?: (index: number, behavior?: string) => Promise<void>;
      activeCell?: { node: HTMLElement };
    };
    nb.activeCellIndex = place.cell_index;
    if (nb.scrollToItem) {
      await nb.scrollToItem(place.cell_index, 'center');
    } else {
      nb.activeCell?.node.scrollIntoView({ block: 'center' });
    }
    return;
  }
  const editor = content.editor as IEditorLike | undefined;
  if (editor && place.start_line) {
    const last = Math.max(0, editor.lineCount - 1);
    const start = Math.min(last, Math.max(0, place.start_line - 1));
    const end = Math.min(last, Math.max(start, (place.end_line ?? place.start_line) - 1));
    editor.setCursorPosition({ line: start, column: 0 });
    editor.setSelection({
      start: { line: start, column: 0 },
      end: { line: end, column: (editor.getLine(end) ?? '').length }
    });
    editor.focus();
    await centerLines(editor, start, end);
  }
}
