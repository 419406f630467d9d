import { Alert, Button, Group, List, Modal, Stack, Text, TextInput } from '@mantine/core';
import { useState } from 'react';
import { errorCode, errorMessage } from '../../api/http.ts';

export interface PromptSpec {
  title: string;
  label: string;
  initial: string;
  submitLabel: string;
  description?: string;
  /** null when fine, else the message shown under the input */
  validate: (value: string) => string | null;
  /** throws the Panel's error to show it in the dialog */
  submit: (value: string) => Promise<void>;
  testId: string;
}

/**
 * A dialog's one request: `busy` while it runs, the Panel's error kept as `failure` to show in place
 * (the dialog stays open), `onClose` once it succeeded.
 */
function useSubmit(submit: () => Promise<void>, onClose: () => void) {
  const [busy, setBusy] = useState(false);
  const [failure, setFailure] = useState<unknown>(null);
  const run = async () => {
    setBusy(true);
    setFailure(null);
    try {
      await submit();
      onClose();
    } catch (e) {
      setFailure(e);
    } finally {
      setBusy(false);
    }
  };
  return { busy, failure, setFailure, run };
}

/** The Panel's error, code first, as the dialogs show it. */
function Failure({ failure, testId }: { failure: unknown; testId: string }) {
  return failure ? (
    <Alert color="red" role="alert" data-testid={testId}>
      <code>{errorCode(failure)}</code> {errorMessage(failure)}
    </Alert>
  ) : null;
}

/** One input, checked as typed, the Panel's error shown in place (the dialog stays open). */
export function PromptDialog({ spec, onClose }: { spec: PromptSpec | null; onClose: () => void }) {
  return (
    <Modal opened={spec !== null} onClose={onClose} title={spec?.title} centered>
      {spec ? <PromptBody key={spec.testId + spec.initial} spec={spec} onClose={onClose} /> : null}
    </Modal>
  );
}

function PromptBody({ spec, onClose }: { spec: PromptSpec; onClose: () => void }) {
  const [value, setValue] = useState(spec.initial);
  const invalid = spec.validate(value);
  const submit = useSubmit(() => spec.submit(value), onClose);
  const { busy, failure } = submit;
  const run = async () => {
    if (invalid || busy) return;
    await submit.run();
  };
  return (
    <form
      onSubmit={(e) => {
        e.preventDefault();
        void run();
      }}
    >
      <Stack gap="sm">
        <TextInput
          label={spec.label}
          description={spec.description}
          value={value}
          onChange={(e) => setValue(e.currentTarget.value)}
          error={value !== spec.initial || value === '' ? invalid : null}
          data-autofocus
          data-testid={`${spec.testId}-input`}
          ff="monospace"
        />
        <Failure failure={failure} testId={`${spec.testId}-error`} />
        <Group justify="flex-end">
          <Button variant="default" onClick={onClose}>
            Cancel
          </Button>
          <Button
            type="submit"
            loading={busy}
            disabled={invalid !== null}
            data-testid={`${spec.testId}-submit`}
          >
            {spec.submitLabel}
          </Button>
        </Group>
      </Stack>
    </form>
  );
}

/** Deleting many: the names and the counts, then one request (every name checked before any goes). */
export function DeleteDialog({
  names,
  folders,
  onClose,
  submit,
}: {
  names: string[] | null;
  /** how many of `names` are folders (deleted with their contents) */
  folders: number;
  onClose: () => void;
  submit: () => Promise<void>;
}) {
  const { busy, failure, setFailure, run } = useSubmit(submit, onClose);
  const n = names?.length ?? 0;
  const files = n - folders;
  return (
    <Modal
      opened={names !== null}
      onClose={() => {
        setFailure(null);
        onClose();
      }}
      title={`Delete ${n} ${n === 1 ? 'entry' : 'entries'}?`}
      centered
    >
      <Stack gap="sm">
        <Text size="sm" data-testid="delete-counts">
          {files} file{files === 1 ? '' : 's'} and {folders} folder{folders === 1 ? '' : 's'}
          {folders > 0 ? ' (with everything in them)' : ''}. This cannot be undone.
        </Text>
        <List size="sm" ff="monospace" mah={200} style={{ overflow: 'auto' }}>
          {(names ?? []).slice(0, 50).map((name) => (
            <List.Item key={name}>{name}</List.Item>
          ))}
          {n > 50 ? <List.Item>… and {n - 50} more</List.Item> : null}
        </List>
        <Failure failure={failure} testId="delete-error" />
        <Group justify="flex-end">
          <Button variant="default" onClick={onClose}>
            Cancel
          </Button>
          <Button color="red" loading={busy} onClick={() => void run()} data-testid="delete-confirm">
            Delete {n}
          </Button>
        </Group>
      </Stack>
    </Modal>
  );
}
