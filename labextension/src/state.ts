/**
 * What the panel's sections share: the model and collection lists from the server, and the
 * user's settings (default model and collection). Sections listen to `changed`.
 */
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { Signal } from '@lumino/signaling';

import * as api from './api';

/** What changed: the model list, the collection list, or the settings. */
export type Change = 'models' | 'collections' | 'settings';

/** Shared panel state; the only holder of server lists and settings. */
export class LLMState {
  models: api.IModel[] = [];
  loaded: api.IPsEntry[] = [];
  collections: api.ICollection[] = [];
  /** The server's answer to the last collections call failing (e.g. 501), if it did. */
  collectionsError: unknown = null;
  defaultModel = '';
  defaultCollection = '';
  readonly changed = new Signal<LLMState, Change>(this);
  private settings: ISettingRegistry.ISettings | null = null;

  /** Follow the plugin's settings (default model and collection). */
  useSettings(settings: ISettingRegistry.ISettings): void {
    this.settings = settings;
    const read = (): void => {
      this.defaultModel = String(settings.get('defaultModel').composite ?? '');
      this.defaultCollection = String(settings.get('defaultCollection').composite ?? '');
      this.changed.emit('settings');
    };
    settings.changed.connect(read);
    read();
  }

  /** Reload the models and the loaded models (`models` and `ps`). */
  async refreshModels(): Promise<void> {
    const [models, loaded] = await Promise.all([api.listModels(), api.listLoaded()]);
    this.models = models;
    this.loaded = loaded;
    this.changed.emit('models');
  }

  /** Reload the collections; a failure is kept in `collectionsError` and rethrown. */
  async refreshCollections(): Promise<void> {
    try {
      this.collections = await api.listCollections();
      this.collectionsError = null;
    } catch (error) {
      this.collections = [];
      this.collectionsError = error;
      this.changed.emit('collections');
      throw error;
    }
    this.changed.emit('collections');
  }

  /** Save the default model in the settings ('' for the server's default). */
  async setDefaultModel(id: string): Promise<void> {
    this.defaultModel = id;
    if (this.settings) {
      await this.settings.set('defaultModel', id);
    } else {
      this.changed.emit('settings');
    }
  }

  /** Save the default collection in the settings ('' for none). */
  async setDefaultCollection(name: string): Promise<void> {
    this.defaultCollection = name;
    if (this.settings) {
      await this.settings.set('defaultCollection', name);
    } else {
      this.changed.emit('settings');
    }
  }

  /** The models that can answer a chat now or after a load (installed, loaded, or remote
   * with its API key set). */
  chatModels(): api.IModel[] {
    return this.models.filter(m => canChat(m));
  }
}

/** Whether a model is an embedding model (not one to chat with). */
export function isEmbedding(m: api.IModel): boolean {
  return (m.tags ?? []).some(t => t.toUpperCase() === 'EMBEDDING');
}

/** Whether a remote model lacks its API key on the server (it cannot answer then). */
export function keyMissing(m: api.IModel): boolean {
  return m.backend !== 'llama_cpp' && m.usable === false;
}

/** Whether the classroom policy lets this user use the model. */
export function isAllowed(m: api.IModel): boolean {
  return m.allowed !== false;
}

/** Whether a model can answer a chat now or after a load (and the user may use it). */
export function canChat(m: api.IModel): boolean {
  if (!isAllowed(m)) {
    return false;
  }
  const ready = m.backend === 'llama_cpp'
    ? m.state === 'installed' || m.state === 'loaded'
    : !keyMissing(m);
  return ready && !isEmbedding(m);
}
