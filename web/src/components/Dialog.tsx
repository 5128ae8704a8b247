// Modal dialogs on the native <dialog>: showModal() makes the rest of the
// page inert (focus stays inside) and Escape closes it (the cancel event).
import { type ReactNode, useEffect, useRef } from 'react';

export function Modal({
  open,
  onClose,
  title,
  children,
  className,
  testid,
}: {
  open: boolean;
  onClose: () => void;
  title: string;
  children: ReactNode;
  className?: string;
  testid?: string;
}) {
  const ref = useRef<HTMLDialogElement>(null);
  const prevFocus = useRef<Element | null>(null);
  useEffect(() => {
    const d = ref.current;
    if (!d) return;
    if (open && !d.open) {
      prevFocus.current = document.activeElement;
      d.showModal();
      d.querySelector<HTMLElement>('[data-autofocus]')?.focus();
    } else if (!open && d.open) {
      d.close();
    }
  }, [open]);
  useEffect(() => {
    const d = ref.current;
    return () => {
      if (d?.open) d.close();
    };
  }, []);
  useEffect(() => {
    if (open) return;
    const el = prevFocus.current;
    if (el instanceof HTMLElement && el.isConnected) el.focus();
  }, [open]);
  return (
    <dialog
      ref={ref}
      className={'modal ' + (className ?? '')}
      aria-label={title}
      data-testid={testid}
      onCancel={(e) => {
        e.preventDefault();
        onClose();
      }}
      onClick={(e) => {
        if (e.target === ref.current) onClose(); // the backdrop
      }}
    >
      {open && (
        <div className="modal-body">
          <header className="modal-head">
            <h2>{title}</h2>
            <button type="button" className="icon" aria-label="Close" onClick={onClose}>
              ×
            </button>
          </header>
          {children}
        </div>
      )}
    </dialog>
  );
}

export interface ConfirmRequest {
  title: string;
  message: ReactNode;
  confirm: string; // the button's label
  danger?: boolean;
  run: () => Promise<unknown>;
}

export function Confirm({ req, onDone }: { req: ConfirmRequest | null; onDone: (err?: unknown) => void }) {
  const busy = useRef(false);
  return (
    <Modal open={req !== null} onClose={() => onDone()} title={req?.title ?? ''} testid="confirm-dialog">
      {req && (
        <form
          method="dialog"
          onSubmit={async (e) => {
            e.preventDefault();
            if (busy.current) return;
            busy.current = true;
            try {
              await req.run();
              onDone();
            } catch (err) {
              onDone(err);
            } finally {
              busy.current = false;
            }
          }}
        >
          <div className="modal-text">{req.message}</div>
          <div className="row end">
            <button type="button" onClick={() => onDone()}>
              Cancel
            </button>
            <button type="submit" className={req.danger ? 'danger' : 'primary'} data-testid="confirm-ok" data-autofocus>
              {req.confirm}
            </button>
          </div>
        </form>
      )}
    </Modal>
  );
}
