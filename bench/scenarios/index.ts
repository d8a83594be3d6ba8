/**
 * Every scenario, in the order the table lists them. A new scenario is a file
 * in this folder exporting a `Scenario` (see ../harness.ts) and one line here.
 */
import type { Scenario } from '../harness.js';
import { apiCreate } from './api-create.js';
import { import100k, seed100k } from './bulk-create.js';
import { calendar } from './calendar.js';
import { dispatchLatencyBound, dispatchZeroLatency } from './dispatch.js';
import { pgDispatch, pgScaleOut } from './postgres.js';
import { scheduleLag } from './schedule-lag.js';
import { simulateYear } from './simulate-year.js';
import { sweepScale } from './sweep-scale.js';
import { webhookRelay } from './webhook-relay.js';

export const SCENARIOS: readonly Scenario[] = [
  dispatchZeroLatency,
  dispatchLatencyBound,
  scheduleLag,
  sweepScale,
  seed100k,
  import100k,
  webhookRelay,
  apiCreate,
  calendar,
  simulateYear,
  pgDispatch,
  pgScaleOut,
];
