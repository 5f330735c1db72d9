/**
 * jupyter-llm's JupyterLab plugin: the side panel, its commands (palette and the file
 * browser's "Add to collection"), and its settings (default model and collection).
 */
import {
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette, InputDialog } from '@jupyterlab/apputils';
import { IDocumentManager } from '@jupyterlab/docmanager';
import { ILauncher } from '@jupyterlab/launcher';
import { IDefaultFileBrowser } from '@jupyterlab/filebrowser';
import { INotebookTracker, NotebookActions } from '@jupyterlab/notebook';
import { IRenderMimeRegistry } from '@jupyterlab/rendermime';
import { ISettingRegistry } from '@jupyterlab/settingregistry';

import { ChatSection, IProvenance } from './chat';
import { ClassSection } from './classroom';
import { openSource, toIngestPath } from './citations';
import { CollectionsSection } from './collections';
import { ModelsSection } from './models';
import { ErrorBox, IErrorAction } from './dom';
import { LLMPanel, llmIcon, PANEL_ID, SectionName } from './panel';
import { APIError, IHint } from './request';
import { LLMState } from './state';

/** The plugin id (its settings live under this id). */
export const PLUGIN_ID = 'jupyter-llm:plugin';

/** The command ids. */
export namespace CommandIDs {
  export const open = 'jupyter-llm:open';
  export const openModels = 'jupyter-llm:open-models';
  export const openChat = 'jupyter-llm:open-chat';
  export const openCollections = 'jupyter-llm:open-collections';
  export const openClass = 'jupyter-llm:open-class';
  export const refresh = 'jupyter-llm:refresh';
  export const newChat = 'jupyter-llm:new-chat';
  export const addToCollection = 'jupyter-llm:add-to-collection';
  export const askAboutCell = 'jupyter-llm:ask-about-cell';
}

/** The palette's category and the Launcher's section: people look for "AI", "LLM" or "Tutor",
 * so the name holds all three. */
const PALETTE_CATEGORY = 'AI Tutor (LLM)';

/** The metadata key of cells the chat inserts (which model, when, for which question). */
export const PROVENANCE_KEY = 'jupyter_llm';

function currentNotebook(tracker: INotebookTracker | null, what: string) {
  const panel = tracker?.currentWidget;
  if (!panel) {
    throw new Error(`Open a notebook first: ${what}`);
  }
  return panel;
}

async function insertCode(
  tracker: INotebookTracker | null,
  code: string,
  mode: 'below' | 'replace',
  provenance: IProvenance
): Promise<void> {
  const panel = currentNotebook(tracker, mode === 'below'
    ? 'the code is inserted below its active cell.'
    : 'the code replaces its active cell.');
  await panel.context.ready;
  const notebook = panel.content;
  if (mode === 'below' || !notebook.activeCell) {
    NotebookActions.insertBelow(notebook);
  }
  if (notebook.activeCell?.model.type !== 'code') {
    NotebookActions.changeCellType(notebook, 'code');
  }
  const cell = notebook.activeCell;
  if (!cell) {
    throw new Error('Could not insert a cell into the notebook.');
  }
  cell.model.sharedModel.setSource(code.replace(/\n$/, ''));
  cell.model.setMetadata(PROVENANCE_KEY, { ...provenance, inserted: mode });
}

/** The active cell of the current notebook as a draft question: its source, output or error. */
function cellQuestion(tracker: INotebookTracker | null): string {
  const panel = currentNotebook(tracker, 'the question is about its active cell.');
  const cell = panel.content.activeCell;
  if (!cell) {
    throw new Error('Select a cell in the notebook first.');
  }
  const source = cell.model.sharedModel.getSource();
  const lang = cell.model.type === 'code' ? 'python' : 'markdown';
  const parts = [`\`\`\`${lang}\n${source}\n\`\`\``];
  let question = 'Explain what this cell does.';
  const outputs = (cell.model.toJSON() as { outputs?: Record<string, unknown>[] }).outputs ?? [];
  for (const o of outputs) {
    if (o.output_type === 'error') {
      question = 'Why does this cell fail, and how do I fix it?';
      const trace = `${o.ename}: ${o.evalue}`;
      parts.push(`It fails with:\n\`\`\`\n${trace}\n\`\`\``);
    } else if (o.output_type === 'stream') {
      parts.push(`Its output:\n\`\`\`\n${String(o.text).slice(0, 2000)}\n\`\`\``);
    } else if (o.data && typeof (o.data as Record<string, unknown>)['text/plain'] === 'string') {
      parts.push(`Its result:\n\`\`\`\n${String((o.data as Record<string, string>)['text/plain']).slice(0, 2000)}\n\`\`\``);
    }
  }
  return `${question}\n\n${parts.join('\n\n')}`;
}

/** Focus after whatever took the focus back this turn (the closing palette does). */
function focusSoon(focus: () => void): void {
  focus();
  requestAnimationFrame(() => window.setTimeout(focus, 0));
}

async function insertIntoNotebook(tracker: INotebookTracker | null, text: string): Promise<void> {
  const panel = tracker?.currentWidget;
  if (!panel) {
    throw new Error('Open a notebook first: the answer is inserted below its active cell.');
  }
  await panel.context.ready; // a notebook still loading would drop the new cell
  const notebook = panel.content;
  NotebookActions.insertBelow(notebook);
  NotebookActions.changeCellType(notebook, 'markdown');
  const cell = notebook.activeCell;
  if (!cell) {
    throw new Error('Could not insert a cell into the notebook.');
  }
  cell.model.sharedModel.setSource(text);
  if ('rendered' in cell) {
    (cell as unknown as { rendered: boolean }).rendered = true; // a MarkdownCell
  }
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description: 'The jupyter-llm side panel: models, chat and collections.',
  autoStart: true,
  requires: [IRenderMimeRegistry, IDocumentManager],
  optional: [
    ISettingRegistry,
    ICommandPalette,
    ILayoutRestorer,
    INotebookTracker,
    IDefaultFileBrowser,
    ILauncher
  ],
  activate: (
    app: JupyterFrontEnd,
    rendermime: IRenderMimeRegistry,
    docManager: IDocumentManager,
    settingRegistry: ISettingRegistry | null,
    palette: ICommandPalette | null,
    restorer: ILayoutRestorer | null,
    notebooks: INotebookTracker | null,
    fileBrowser: IDefaultFileBrowser | null,
    launcher: ILauncher | null
  ) => {
    const state = new LLMState();
    const open = (section: SectionName): void => {
      panel.showSection(section);
      app.shell.activateById(PANEL_ID);
      if (section === 'chat') {
        focusSoon(() => chat.focusInput());
      }
    };
    const models = new ModelsSection(state);
    const chat = new ChatSection(state, {
      rendermime,
      openCitation: c => openSource(docManager, c),
      insertIntoNotebook: text => insertIntoNotebook(notebooks, text),
      insertCode: (code, mode, provenance) => insertCode(notebooks, code, mode, provenance),
      openNotebook: async path => {
        docManager.openOrReveal(path);
      }
    });
    const collections = new CollectionsSection(state, {
      openSource: place => openSource(docManager, place),
      useInChat: name => {
        chat.collection = name;
        open('chat');
      },
      pickFolder: async name => {
        const result = await InputDialog.getText({
          title: `Add a folder to ${name}`,
          label: 'Folder, relative to the folder JupyterLab serves',
          text: fileBrowser?.model.path ?? ''
        });
        return result.button.accept ? (result.value ?? '') : null;
      },
      ingestPath: p => toIngestPath(p)
    });
    const classroom = new ClassSection(state);
    const panel = new LLMPanel(models, chat, collections, classroom);

    // An error's hint becomes a button in the words of the panel.
    ErrorBox.resolveAction = (hint: IHint, error: APIError): IErrorAction | null => {
      const model = String(hint.model ?? '');
      const collection = String(hint.collection ?? '');
      switch (hint.action) {
        case 'pull':
          return model ? {
            label: `Download ${model}`,
            run: async () => {
              open('models');
              await models.download(model);
              const after = state.models.find(m => m.id === model);
              if (after?.state !== 'installed' && after?.state !== 'loaded') {
                throw new Error(models.errors.message || `${model} was not downloaded.`);
              }
            }
          } : null;
        case 'load':
          return model ? { label: `Load ${model}`, run: () => models.load(model) } : null;
        case 'remove':
          return model ? {
            label: `Delete ${model} and download it again`,
            run: async () => {
              open('models');
              await models.removeAndPull(model);
            }
          } : null;
        case 'cancel_pull':
          return model ? { label: `Cancel the download of ${model}`, run: () => models.cancel(model) } : null;
        case 'list_models':
          return { label: 'Show the models', run: async () => open('models') };
        case 'install':
          return {
            label: 'Show the models',
            explain: `This needs the Python package \`${hint.package ?? hint.extra ?? '?'}\`: install it ` +
              'where JupyterLab runs, then restart JupyterLab.',
            run: async () => open('models')
          };
        case 'set_key':
          return {
            label: 'Show the models',
            explain: `${model || 'This model'} needs an API key: set \`${hint.env ?? 'its key variable'}\` ` +
              'in the environment JupyterLab starts from (for example in the terminal before ' +
              '`jupyter lab`), then restart JupyterLab.',
            run: async () => open('models')
          };
        case 'ingest':
          return collection ? {
            label: `Add files to ${collection}`,
            run: async () => {
              open('collections');
              const folder = await collections.pickFolderFor(collection);
              if (folder !== null) {
                await collections.ingest(collection, [folder]);
              }
            }
          } : null;
        case 'create_collection':
          return collection ? {
            label: `Create ${collection}`,
            run: async () => {
              if (!(await collections.create(collection))) {
                throw new Error(collections.errors.message || `Could not create ${collection}.`);
              }
            }
          } : null;
        case 'completion':
          return {
            label: 'How to use it',
            explain: `${model || 'This model'} has no chat template, so it cannot chat; it can ` +
              'continue a text. Use `%%llm --complete` in a notebook, or pick a chat model here.',
            run: async () => open('models')
          };
        case 'retry':
          return null; // the section passes its own Retry (it knows what to resend)
        case 'list_templates':
          return null;
        default:
          void error;
          return null;
      }
    };
    app.shell.add(panel, 'left', { rank: 600 });
    restorer?.add(panel, PANEL_ID);

    if (settingRegistry) {
      settingRegistry
        .load(PLUGIN_ID)
        .then(settings => state.useSettings(settings))
        .catch(error => models.errors.show(error));
    }

    const refresh = async (): Promise<void> => {
      await Promise.all([models.refresh(), collections.refresh()]);
    };

    const { commands } = app;
    commands.addCommand(CommandIDs.open, {
      label: 'Open the LLM Panel',
      icon: llmIcon,
      execute: args => open(((args.section as SectionName) || 'models'))
    });
    commands.addCommand(CommandIDs.openModels, {
      label: 'LLM: Models',
      caption: 'Download, load and choose models',
      execute: () => open('models')
    });
    commands.addCommand(CommandIDs.openChat, {
      label: args => (args.isLauncher ? 'AI Tutor Chat' : 'LLM: Chat'),
      caption: 'Chat with a model (an AI tutor), optionally grounded on a collection',
      icon: args => (args.isLauncher ? llmIcon : undefined),
      execute: () => open('chat')
    });
    commands.addCommand(CommandIDs.askAboutCell, {
      label: 'LLM: Ask About This Cell',
      caption: 'Ask the AI tutor about the active cell, its output or its error',
      execute: () => {
        let draft = '';
        try {
          draft = cellQuestion(notebooks);
        } catch (error) {
          open('chat');
          chat.errors.show(error);
          return;
        }
        open('chat');
        focusSoon(() => chat.draft(draft));
      }
    });
    commands.addCommand(CommandIDs.openCollections, {
      label: 'LLM: Collections',
      caption: 'Create, fill and search collections of documents',
      execute: () => open('collections')
    });
    commands.addCommand(CommandIDs.openClass, {
      label: 'LLM: Class',
      caption: 'Your usage and limits; for instructors, the class history, statistics and export',
      execute: () => open('class')
    });
    commands.addCommand(CommandIDs.refresh, {
      label: 'LLM: Refresh Models and Collections',
      execute: refresh
    });
    commands.addCommand(CommandIDs.newChat, {
      label: 'LLM: New Chat',
      execute: () => {
        chat.clear();
        open('chat');
      }
    });
    commands.addCommand(CommandIDs.addToCollection, {
      label: 'Add to Collection…',
      caption: 'Add the selected files or folders to an LLM collection',
      icon: llmIcon,
      isVisible: () => !!fileBrowser,
      execute: async () => {
        if (!fileBrowser) {
          return;
        }
        const paths = [...fileBrowser.selectedItems()].map(item => item.path);
        if (paths.length === 0) {
          paths.push(fileBrowser.model.path);
        }
        const names = state.collections.map(c => c.name);
        const result = await InputDialog.getItem({
          title: `Add ${paths.length === 1 ? paths[0] || 'the root folder' : `${paths.length} items`} to a collection`,
          label: 'Collection (pick one, or type a new name)',
          items: names.length ? names : [state.defaultCollection || 'course'],
          current: state.defaultCollection || names[0] || 'course',
          editable: true
        });
        const name = (result.value ?? '').trim();
        if (!result.button.accept || !name) {
          return;
        }
        open('collections');
        await collections.ingest(name, paths);
      }
    });

    if (launcher) {
      launcher.add({
        command: CommandIDs.openChat,
        args: { isLauncher: true },
        category: PALETTE_CATEGORY,
        rank: 0
      });
    }
    if (palette) {
      for (const command of [
        CommandIDs.openModels,
        CommandIDs.openChat,
        CommandIDs.openCollections,
        CommandIDs.openClass,
        CommandIDs.refresh,
        CommandIDs.newChat,
        CommandIDs.askAboutCell
      ]) {
        palette.addItem({ command, category: PALETTE_CATEGORY });
      }
    }
    app.contextMenu.addItem({
      command: CommandIDs.askAboutCell,
      selector: '.jp-Notebook .jp-Cell',
      rank: 30
    });
    app.contextMenu.addItem({
      command: CommandIDs.addToCollection,
      selector: '.jp-DirListing-item[data-isdir="true"]',
      rank: 20
    });
    app.contextMenu.addItem({
      command: CommandIDs.addToCollection,
      selector: '.jp-DirListing-item[data-isdir="false"]',
      rank: 20
    });

    void app.restored.then(refresh);
  }
};

export default plugin;
