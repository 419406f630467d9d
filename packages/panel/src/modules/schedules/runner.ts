/**
 * The tasks of a schedule run through the same use cases as the REST routes: a command
 * (`ServersService.command`), a power action or a reinstall (operations, waited for to their end),
 * a backup (`BackupsService.create`, to the end), an image update (`ImageUpdatesService.update`,
 * to its outcome: a rollback is a failed task, its reason the message).
 */
import { CodedError } from '@cap/protocol';
import type { BackupsService } from '../backups/service.ts';
import { DEFAULT_READY_TIMEOUT_SECONDS, type ImageUpdatesService } from '../image-updates/service.ts';
import type { OperationsService } from '../operations/service.ts';
import type { ServersService } from '../servers/service.ts';
import type { TaskRunner } from './service.ts';

export function panelTaskRunner(deps: {
  servers: ServersService;
  backups: BackupsService;
  operations: OperationsService;
  imageUpdates: ImageUpdatesService;
}): TaskRunner {
  const waitOp = async (operationId: string): Promise<string> => {
    const { end } = await deps.operations.waitFor(operationId);
    const r = await end;
    if (!r.success)
      throw new CodedError((r.code ?? 'INTERNAL_ERROR') as never, r.message ?? 'the operation failed');
    return `operation ${operationId} done`;
  };
  return {
    status: (serverId) => deps.servers.status(serverId),
    resume: waitOp,
    async run(serverId, task, ctx) {
      switch (task.action) {
        case 'command':
          await deps.servers.command(serverId, task.command);
          return 'sent';
        case 'power': {
          const { operationId } = await deps.servers.power(serverId, task.power, ctx.actor);
          await ctx.started(operationId);
          await waitOp(operationId);
          return `${task.power} done`;
        }
        case 'reinstall': {
          const { operationId } = await deps.servers.reinstall(serverId, ctx.actor);
          await ctx.started(operationId);
          await waitOp(operationId);
          return 'reinstalled';
        }
        case 'backup': {
          const { operationId, backupId, done } = await deps.backups.create(
            serverId,
            {
              name: `schedule: ${ctx.scheduleName}`.slice(0, 191),
              format: 'tar.zst',
              locked: false,
              ...(task.retain === undefined ? {} : { retain: task.retain }),
            },
            ctx.actor,
          );
          await ctx.started(operationId);
          await done;
          return `backup ${backupId} completed`;
        }
        case 'update': {
          const nodeId = await deps.servers.nodeIdOf(serverId);
          const { operationId, done } = await deps.imageUpdates.update(
            { id: serverId, node_id: nodeId },
            ctx.actor,
            {
              readyTimeoutSeconds: task.readyTimeoutSeconds ?? DEFAULT_READY_TIMEOUT_SECONDS,
              stableSeconds: 10,
            },
          );
          await ctx.started(operationId);
          const last = await done;
          if (last.outcome === 'rolled_back')
            throw new CodedError('INVALID_STATE', `rolled back: ${last.reason ?? 'not ready'}`);
          return last.outcome === 'unchanged' ? 'image already current' : 'image updated';
        }
      }
    },
  };
}
