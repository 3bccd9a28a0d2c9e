"""Where the engine changes algorithm: every tuning threshold in one place, with its reason.

The measurements behind each value, and how they were taken, are in benchmarks/README.md
(the engine's section). A test that needs another path changes the value here, e.g.
``monkeypatch.setattr(tuning, "MAX_TRAINING_BATCH", 0)`` for the reference path in training.
"""

#: Training batches up to this size run the engine's compiled loops; larger ones the layers'
#: reference path, whose autograd backward runs each step's point-wise work in torch's
#: vectorised kernels and overtakes the loops' row-by-row backward there. Inference runs the
#: loops at every batch.
MAX_TRAINING_BATCH = 512

#: Below this batch, inference projects the inputs of all steps first (one BLAS call, where a
#: step's own product is mostly call overhead); from it up, the loop projects each step's
#: input as it goes.
LOOP_PROJECTION_BATCH = 16

#: Loops run in chunks of steps whose input projections take about this many bytes: a buffer
#: freed and taken again stays in the heap, where one for the whole sequence is fresh memory
#: faulted in page by page.
CHUNK_BYTES = 2**21

#: Products of a step with up to this many rows run as a loop of the engine's own; larger
#: ones call torch's BLAS, whose fixed cost per call is more than the loop's work below it.
LOOP_PRODUCT_ROWS = 3

#: The same for the forward's ``x @ W^T`` (``W`` as the layer holds it), whose loop reads ``W``
#: once a step whatever the rows, so it beats the BLAS up to more rows.
LOOP_TRANSPOSED_ROWS = 4

#: A product of a loop's step with up to this many multiply-adds (rows x inner x columns) runs
#: on one of MKL's threads: waking the others costs more than their share of it saves.
ONE_THREAD_PRODUCT = 2**19

#: A layer that runs torch's own kernel (``nn.LSTM``, ``nn.GRU``) takes ``lengths=`` in
#: inference on the engine up to this batch x state width^2 (a step's product, over 3-4 for
#: the gates): the compiled loop skips packing and the steps past each length; above it
#: torch's packed kernel, whose products use all of torch's threads, catches up.
ENGINE_LENGTHS_WORK = 2**20

#: With two torch threads or more, two recurrences run at once on two of torch's OpenMP
#: threads from this batch up: the two directions of a bidirectional layer, the two halves of
#: a one-direction stack's batch in inference. Below it a loop is too light to share.
SIDE_BY_SIDE_BATCH = 4

#: A one-direction stack's inference runs the halves of its batch at once from this much work
#: (steps x rows x state width) up; below it the Python around each half, which holds the GIL,
#: takes most of what the second thread would save.
SPLIT_WORK = 2**16

#: The loops' buffers and the projections' outputs from this size up ask Linux for transparent
#: huge pages: a fresh buffer is faulted in page by page, and a 2 MiB page is one fault where
#: 4 KiB pages are 512.
HUGE_PAGE_BYTES = 2**22

#: A projection over this many rows (steps x batch) or more runs as
#: :func:`rnnkit.functional.linear.linear` lays it out; below, ``F.linear`` itself, whose
#: products are too small for the layout to matter beside a Python call's cost.
LINEAR_ROWS = 256

#: Inputs this narrow (features) take the transposed products in a projection's backward:
#: torch's CPU product is several times slower at ``d^T x`` and ``d W`` with few columns.
NARROW_INPUT = 12
