"""Stamps: GS1 Digital Link URIs, GTIN check digits, keyed serials, labels, PDF sheets, decoding.

* :mod:`qr.gtin` — GTIN-8/12/13/14 validation, check digits, GTIN-14 normalisation.
* :mod:`qr.digital_link` — :class:`~qr.digital_link.DigitalLink` build/parse; :func:`~qr.digital_link.parse_scan`
  for scanner input (URIs, element strings with GS separators, bracketed element strings, bare GTINs).
* :mod:`qr.serials` — :class:`~qr.serials.StampSigner`: ``<index><key letter><HMAC tag>`` serials, verification,
  key rotation, fast batch verification.
* :mod:`qr.matrix` — the QR symbol ``qrcode`` makes, computed about 15 times faster.
* :mod:`qr.label` — one label as a PIL image (DejaVu Sans from :mod:`qr.fonts`, Vietnamese text, OCOP stars).
* :mod:`qr.sheet` — print-ready A4 PDF sheets with crop marks, streamed page by page.
* :mod:`qr.decode` — read QR codes back with zxing-cpp.

Pure library: nothing here reads the environment or global settings; keys, base URLs and sizes are arguments.
"""
