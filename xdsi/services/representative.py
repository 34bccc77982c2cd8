"""Which stored object a WADO-RS rendered resource stands for when it is not an image to draw
(PS3.18 10.4.1.1.3): a Structured Report, an Encapsulated PDF or CDA document, or a video, each sent in
the rendered media types of its Resource Category (PS3.18 Table 8.7.4-1) by ``documents``.

Images stay the renderer's (``Renderer.prepare`` picks a study's or series' representative image);
this module only says when the answer is a document instead:

- a Rendered Instance that is a report, document or video is that object, unless the client
  accepts a video's frames as an image before its stream (then the renderer draws a frame);
- a Rendered Study or Series is represented by one object (a Rendered Resource holds "one or more
  rendered representations" of its parent; the answer here is always one). An image the client
  accepts comes first, as before; when no image is acceptable (``Accept: text/html`` on a study
  with a report), the first report, document or video whose media types the client accepts,
  in series and instance order;
- rendered frames and thumbnails are images only (a video's frames are decoded for them).
"""

from __future__ import annotations

from xdsi.services.plans import MediaTypes, ObjectKind, ObjectPlan, Resolved, RetrievePlan

# PS3.18 Table 8.7.4-1: the Text and Video categories, rendered by the documents service.
DOCUMENT_KINDS = frozenset({ObjectKind.STRUCTURED_REPORT, ObjectKind.PDF, ObjectKind.CDA, ObjectKind.VIDEO})
_IMAGE_KINDS = frozenset({ObjectKind.IMAGE, ObjectKind.MULTI_FRAME})


def document_for(plan: RetrievePlan, acceptable: MediaTypes) -> ObjectPlan | None:
    """The report, document or video a rendered resource stands for; None when it stands for an
    image (or for nothing that can be rendered, which the renderer answers with 406).

    ``acceptable``: the media ranges the client accepts, best first (q=0 ones left out).
    """
    if plan.target.sop_instance_uid is not None:
        [item] = plan.objects
        return item if item.kind in DOCUMENT_KINDS and not _as_image(item, acceptable) else None
    if any(_as_image(item, acceptable) for item in plan.objects):
        return None
    documents = [item for item in plan.objects if item.kind in DOCUMENT_KINDS and item.rendered]
    for item in documents:
        if _accepts(item, acceptable):
            return item
    has_images = any(item.kind in _IMAGE_KINDS and item.rendered for item in plan.objects)
    # Nothing acceptable: the images' 406 names image types; a study of documents names the first's.
    return documents[0] if documents and not has_images else None


def _accepts(item: ObjectPlan, acceptable: MediaTypes) -> bool:
    return isinstance(item.resolve(acceptable), Resolved)


def _as_image(item: ObjectPlan, acceptable: MediaTypes) -> bool:
    """Whether the client takes ``item`` as the renderer draws it: an image in any form it
    accepts; a video when what it accepts first is one of its frames as an image, not its stream."""
    if item.kind in _IMAGE_KINDS:
        return _accepts(item, acceptable)
    outcome = item.resolve(acceptable)
    return item.kind is ObjectKind.VIDEO and isinstance(outcome, Resolved) and outcome.media_type.startswith("image/")
