// The Set KV Budget picker: presets, a number typed into the box (typing `2` + Enter sets 2 MB, it does not
// fuzzy-pick "256 MB"), and Custom… for the input box, visible whatever is typed.
import * as vscode from 'vscode';
import { typedMb } from '../shared/format';
import { KV_BUDGET_MAX_MB, KV_BUDGET_MIN_MB, problemWith } from './settings';

const BUDGET_PRESETS_MB = [8, 16, 32, 64, 128, 256, 512, 1024];

type Item = vscode.QuickPickItem & { mb?: number; custom?: true };

export async function pickBudget(current: number): Promise<number | undefined> {
  const presets: Item[] = BUDGET_PRESETS_MB.map((mb) => ({
    label: `${mb} MB`,
    mb,
    description: mb === current ? 'current' : undefined,
  }));
  const custom: Item = {
    label: 'Custom…',
    description: `${KV_BUDGET_MIN_MB}–${KV_BUDGET_MAX_MB} MB`,
    alwaysShow: true,
    custom: true,
  };
  const qp = vscode.window.createQuickPick<Item>();
  qp.title = 'mixSGA: KV cache budget';
  qp.placeholder = `now ${current} MB — pick one or type a number of MB`;
  qp.items = [...presets, custom];
  const picked = await new Promise<Item | undefined>((resolve) => {
    qp.onDidChangeValue((v) => {
      const mb = typedMb(v);
      if (mb === undefined) {
        qp.items = [...presets, custom];
        return;
      }
      const problem = problemWith('kvBudgetMB', mb);
      // The typed number first, always shown and active: Enter takes it.
      const typed: Item = {
        label: `${mb} MB`,
        mb: problem ? undefined : mb,
        alwaysShow: true,
        description: problem ? `not allowed: ${problem}` : 'the number you typed',
      };
      qp.items = [typed, ...presets.filter((p) => p.mb !== mb), custom];
      qp.activeItems = [typed];
    });
    qp.onDidAccept(() => {
      // A typed number wins over whatever item the quick pick's own filtering made active, unless that is Custom….
      const active = qp.activeItems[0] ?? qp.selectedItems[0];
      const mb = typedMb(qp.value);
      const item =
        active?.custom || mb === undefined
          ? active
          : { label: `${mb} MB`, mb: problemWith('kvBudgetMB', mb) ? undefined : mb };
      if (item && item.mb === undefined && !item.custom) return; // a typed number out of range: stay open
      resolve(item);
      qp.hide();
    });
    qp.onDidHide(() => resolve(undefined));
    qp.show();
  });
  qp.dispose();
  if (!picked) return undefined;
  if (picked.mb !== undefined) return picked.mb;
  const text = await vscode.window.showInputBox({
    title: 'mixSGA: KV cache budget (MB)',
    value: String(current),
    prompt: `Memory for the KV caches of all open documents, ${KV_BUDGET_MIN_MB}–${KV_BUDGET_MAX_MB} MB`,
    validateInput: (v) => {
      const n = typedMb(v);
      return n === undefined ? 'Enter a number of MB' : problemWith('kvBudgetMB', n);
    },
  });
  return text === undefined ? undefined : typedMb(text);
}
