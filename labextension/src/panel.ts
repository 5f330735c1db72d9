/**
 * The side panel: one tab in the left sidebar holding four sections (Models, Chat,
 * Collections, Class) behind an ARIA tablist (arrow keys, Home and End move between tabs).
 */
import { LabIcon } from '@jupyterlab/ui-components';
import { Panel, Widget } from '@lumino/widgets';

import { ChatSection } from './chat';
import { ClassSection } from './classroom';
import { CollectionsSection } from './collections';
import { h } from './dom';
import { ModelsSection } from './models';

/** The id of the side panel (its sidebar tab has `data-id` equal to it). */
export const PANEL_ID = 'jupyter-llm-panel';

/** The section names, in tab order. */
export type SectionName = 'models' | 'chat' | 'collections' | 'class';

const SVG = `<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">
  <path class="jp-icon3" fill="#616161" d="M4 3h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H9l-5 4v-4a2 2 0 0 1-2-2V5a2 2 0 0 1 2-2zm3 5.5a1.5 1.5 0 1 0 0 3 1.5 1.5 0 0 0 0-3zm5 0a1.5 1.5 0 1 0 0 3 1.5 1.5 0 0 0 0-3zm5 0a1.5 1.5 0 1 0 0 3 1.5 1.5 0 0 0 0-3z"/>
</svg>`;

/** The panel's sidebar icon. */
export const llmIcon = new LabIcon({ name: 'jupyter-llm:icon', svgstr: SVG });

/** The side panel. */
export class LLMPanel extends Panel {
  private readonly tabs: Record<SectionName, HTMLButtonElement>;
  private readonly sections: Record<SectionName, Widget>;
  private current: SectionName = 'models';

  constructor(
    readonly models: ModelsSection,
    readonly chat: ChatSection,
    readonly collections: CollectionsSection,
    readonly classroom: ClassSection
  ) {
    super();
    this.id = PANEL_ID;
    this.addClass('jp-llm-Panel');
    this.title.icon = llmIcon;
    this.title.caption = 'LLM: models, chat and collections';
    this.sections = { models, chat, collections, class: classroom };
    const labels: Record<SectionName, string> = {
      models: 'Models',
      chat: 'Chat',
      collections: 'Collections',
      class: 'Class'
    };
    const names = Object.keys(labels) as SectionName[];
    this.tabs = {} as Record<SectionName, HTMLButtonElement>;
    const tablist = h('div', { class: 'jp-llm-tabs', role: 'tablist', 'aria-label': 'LLM sections' });
    for (const name of names) {
      const section = this.sections[name];
      section.id = `jp-llm-section-${name}`;
      section.node.setAttribute('role', 'tabpanel');
      section.node.setAttribute('aria-labelledby', `jp-llm-tab-${name}`);
      const tab = h(
        'button',
        {
          type: 'button',
          role: 'tab',
          id: `jp-llm-tab-${name}`,
          class: 'jp-llm-tab',
          'aria-controls': section.id,
          'data-section': name,
          onclick: () => this.showSection(name),
          onkeydown: (e: KeyboardEvent) => {
            const i = names.indexOf(name);
            const next: Record<string, number> = {
              ArrowRight: (i + 1) % names.length,
              ArrowLeft: (i + names.length - 1) % names.length,
              Home: 0,
              End: names.length - 1
            };
            if (e.key in next) {
              e.preventDefault();
              this.showSection(names[next[e.key]], true);
            }
          }
        },
        labels[name]
      );
      this.tabs[name] = tab;
      tablist.append(tab);
    }
    const header = new Widget({ node: h('div', { class: 'jp-llm-header' }, tablist) });
    this.addWidget(header);
    for (const name of names) {
      this.addWidget(this.sections[name]);
    }
    this.showSection('models');
  }

  /** The section shown. */
  get section(): SectionName {
    return this.current;
  }

  /** Show a section (and focus its tab when `focusTab`). */
  showSection(name: SectionName, focusTab = false): void {
    this.current = name;
    for (const [n, tab] of Object.entries(this.tabs) as [SectionName, HTMLButtonElement][]) {
      const selected = n === name;
      tab.setAttribute('aria-selected', String(selected));
      tab.tabIndex = selected ? 0 : -1;
      tab.classList.toggle('jp-mod-current', selected);
      this.sections[n].setHidden(!selected);
    }
    if (focusTab) {
      this.tabs[name].focus();
    }
  }
}
