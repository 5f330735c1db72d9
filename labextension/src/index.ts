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
import { IDefaultFileBrowser } from '@jupyterlab/filebrowser';
import { INotebookTracker, NotebookActions } from '@jupyterlab/notebook';
import { IRenderMimeRegistry } from '@jupyterlab/rendermime';
import { ISettingRegistry } from '@jupyterlab/settingregistry';

import { ChatSection } from './chat';
import { openSource, toIngestPath } from './citations';
import { CollectionsSection } from './collections';
import { ModelsSection } from './models';
import { LLMPanel, llmIcon, PANEL_ID, SectionName } from './panel';
import { LLMState } from './state';

/** The plugin id (its settings live under this id). */
export const PLUGIN_ID = 'jupyter-llm:plugin';

/** The command ids. */
export namespace CommandIDs {
  export const open = 'jupyter-llm:open';
  export const openModels = 'jupyter-llm:open-models';
  export const openChat = 'jupyter-llm:open-chat';
  export const openCollections = 'jupyter-llm:open-collections';
  export const refresh = 'jupyter-llm:refresh';
  export const newChat = 'jupyter-llm:new-chat';
  export const addToCollection = 'jupyter-llm:add-to-collection';
}

const PALETTE_CATEGORY = 'LLM';

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
    IDefaultFileBrowser
  ],
  activate: (
    app: JupyterFrontEnd,
    rendermime: IRenderMimeRegistry,
    docManager: IDocumentManager,
    settingRegistry: ISettingRegistry | null,
    palette: ICommandPalette | null,
    restorer: ILayoutRestorer | null,
    notebooks: INotebookTracker | null,
    fileBrowser: IDefaultFileBrowser | null
  ) => {
    const state = new LLMState();
    const open = (section: SectionName): void => {
      panel.showSection(section);
      app.shell.activateById(PANEL_ID);
      if (section === 'chat') {
        chat.focusInput();
      }
    };
    const models = new ModelsSection(state);
    const chat = new ChatSection(state, {
      rendermime,
      openCitation: c => openSource(docManager, c),
      insertIntoNotebook: text => insertIntoNotebook(notebooks, text)
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
    const panel = new LLMPanel(models, chat, collections);
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
      label: 'LLM: Chat',
      caption: 'Chat with a model, optionally grounded on a collection',
      execute: () => open('chat')
    });
    commands.addCommand(CommandIDs.openCollections, {
      label: 'LLM: Collections',
      caption: 'Create, fill and search collections of documents',
      execute: () => open('collections')
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

    if (palette) {
      for (const command of [
        CommandIDs.openModels,
        CommandIDs.openChat,
        CommandIDs.openCollections,
        CommandIDs.refresh,
        CommandIDs.newChat
      ]) {
        palette.addItem({ command, category: PALETTE_CATEGORY });
      }
    }
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
