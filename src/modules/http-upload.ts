// XEP-0363 HTTP File Upload: the upload.<domain> host hands out slots.
// Local users ask for a slot (filename, size, content type) and get a PUT
// URL (signed, single-use, valid upload.slotLifetime seconds) and a GET URL;
// the bytes travel over HTTPS (websocket/upload-routes.ts). Disco#info
// carries the size limit (XEP-0128 form), which clients read before asking.
import type { Module, StanzaEvent } from '../host/host.ts';
import { sendResult } from '../host/iq-result.ts';
import { UploadError, UploadService } from '../upload/upload-service.ts';
import { el, firstChild } from '../xml/element.ts';
import { StanzaError } from '../xml/errors.ts';
import { NS } from '../xml/namespaces.ts';

export const httpUploadModule: Module = async (host) => {
  const { server } = host;
  const uploads = await UploadService.start(server);
  host.onStop(() => uploads.stop());
  host.identities.push({ category: 'store', type: 'file', name: 'HTTP File Upload' });
  for (const f of [NS.discoInfo, NS.discoItems, NS.httpUpload]) host.features.add(f);

  host.hook(`iq-get/host/${NS.discoInfo}:query`, async (e) => {
    if (firstChild(e.stanza)?.attrs.node) throw new StanzaError('item-not-found');
    sendResult(
      e,
      el(
        'query',
        { xmlns: NS.discoInfo },
        ...host.identities.map((i) => el('identity', { category: i.category, type: i.type, name: i.name })),
        ...[...host.features].sort().map((f) => el('feature', { var: f })),
        // XEP-0363 §3: the limit, so clients refuse large files before asking.
        el(
          'x',
          { xmlns: NS.dataForms, type: 'result' },
          el('field', { var: 'FORM_TYPE', type: 'hidden' }, el('value', null, NS.httpUpload)),
          el('field', { var: 'max-file-size' }, el('value', null, String(uploads.maxFileSize))),
        ),
      ),
    );
  });
  host.hook(`iq-get/host/${NS.discoItems}:query`, async (e) => {
    if (firstChild(e.stanza)?.attrs.node) throw new StanzaError('item-not-found');
    sendResult(e, el('query', { xmlns: NS.discoItems }));
  });

  host.hook(`iq-get/host/${NS.httpUpload}:request`, async (e: StanzaEvent) => {
    // Only this server's own users, over their own connections, may store files here.
    if (e.origin.kind !== 'c2s' || e.from.domain !== server.config.domain) {
      throw new StanzaError('not-allowed', 'only users of this server may upload files');
    }
    const request = firstChild(e.stanza)!;
    const filename = request.attrs.filename;
    const sizeText = request.attrs.size;
    if (typeof filename !== 'string' || !/^\d{1,16}$/.test(sizeText ?? '')) {
      throw new StanzaError('bad-request', 'a slot request needs a filename and a size in bytes');
    }
    try {
      const slot = await uploads.requestSlot(e.from.bare, filename, Number(sizeText), request.attrs['content-type']);
      sendResult(
        e,
        el('slot', { xmlns: NS.httpUpload }, el('put', { url: slot.putUrl }), el('get', { url: slot.getUrl })),
      );
    } catch (err) {
      if (err instanceof UploadError) throw slotError(err);
      throw err;
    }
  });
};

/** XEP-0363 §5 errors, with the limit or the time to retry when known. */
function slotError(err: UploadError): StanzaError {
  switch (err.reason) {
    case 'too-large':
      return new StanzaError(
        'not-acceptable',
        err.message,
        'modify',
        el(
          'file-too-large',
          { xmlns: NS.httpUpload },
          el('max-file-size', null, String(err.details.maxFileSize)),
        ),
      );
    case 'quota': {
      const at = err.details.retryAt;
      const retry =
        at !== undefined && Number.isFinite(at)
          ? el('retry', { xmlns: NS.httpUpload, stamp: new Date(at).toISOString() })
          : undefined;
      return new StanzaError('resource-constraint', err.message, 'wait', retry);
    }
    case 'unavailable':
      return new StanzaError('service-unavailable', err.message);
    default:
      return new StanzaError('bad-request', err.message);
  }
}
