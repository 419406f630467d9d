/**
 * The tasks of a schedule run through the same use cases as the REST routes: a command
 * (`ServersService.command`), a power action or a reinstall (operations, waited for to their end),
 * a backup (`BackupsService.create`, to the end). There is no "update" task: the Panel has no use
 * case that updates a server's image yet (issue 13 item 3 brings it; its task goes here then).
 */
import { CodedError } from '@cap/protocol';
import type { BackupsService } from '../backups/service.ts';
import type { OperationsService } from '../operations/service.ts';
import type { ServersService } from '../servers/service.ts';
import type { TaskRunner } from './service.ts';

export function panelTaskRunner(deps: {
  servers: ServersService;
  backups: BackupsService;
  operations: OperationsService;
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
      }
    },
  };
}
