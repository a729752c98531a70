import type { Deps } from '../context';
import type { TaskQueue } from '../jobs/task-queue';
import { Worker, defaultOwner } from '../jobs/worker';
import { safeErrorMessage } from '../logger';
import type { NotificationsService } from '../notifications/notifications-service';
import type { NotificationSchedulesService } from '../notifications/schedules';
import { deliveryHandlers } from './delivery';
import { EVENTS_QUEUE, EventDispatcher } from './dispatcher';

export const SCHEDULE_SCAN_MS = 3_600_000;

export interface EventDelivery {
  dispatcher: EventDispatcher;
  worker: Worker;
  /** Runs the notification schedules' scan once now (the server runs it hourly). */
  scanSchedules(): Promise<number>;
  stop(): Promise<void>;
}

/**
 * The server's event delivery: the dispatcher (outbox -> delivery tasks), a worker on the events queue, and the
 * hourly scan of notification schedules. `run: false` builds them without starting (tests drive them by hand).
 */
export function startEventDelivery(
  deps: Deps,
  parts: { tasks: TaskQueue; notifications: NotificationsService; schedules: NotificationSchedulesService },
  opts: { run: boolean },
): EventDelivery {
  const dispatcher = new EventDispatcher(deps, parts.tasks);
  const worker = new Worker(deps, parts.tasks, deliveryHandlers(deps, { dispatcher, notifications: parts.notifications }), {
    owner: defaultOwner(),
    queues: [EVENTS_QUEUE],
    pollMs: 500,
    concurrency: 8,
    leaseMs: 5 * 60_000,
  });
  const scanSchedules = async () => {
    try {
      return await parts.schedules.scan();
    } catch (e) {
      deps.log.warn('notification schedule scan failed', { error: safeErrorMessage(e) });
      return 0;
    }
  };
  let timer: NodeJS.Timeout | undefined;
  if (opts.run) {
    dispatcher.start();
    worker.start();
    timer = setInterval(() => void scanSchedules(), SCHEDULE_SCAN_MS);
    timer.unref();
    void scanSchedules();
  }
  return {
    dispatcher,
    worker,
    scanSchedules,
    async stop() {
      if (timer) clearInterval(timer);
      await dispatcher.stop();
      await worker.stop();
    },
  };
}
