class WireFormatError(ValueError):
    """Bytes that do not follow the wire format they were decoded as.

    The only exception the decoders in `kubedock.wire` raise for bad input.
    """
