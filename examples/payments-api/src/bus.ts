import { EventEmitter } from 'node:events';
import type { Payment } from './payments.ts';

/** Payment status events, from the HTTP API to the WebSocket and MQTT subscribers of that partner. */
export function paymentBus() {
  const emitter = new EventEmitter();
  emitter.setMaxListeners(0);
  return {
    publish: (payment: Payment) => emitter.emit('payment', payment),
    subscribe(listener: (payment: Payment) => void): () => void {
      emitter.on('payment', listener);
      return () => emitter.off('payment', listener);
    },
  };
}

export type PaymentBus = ReturnType<typeof paymentBus>;
