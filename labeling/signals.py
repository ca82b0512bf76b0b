"""What labeling announces to apps above it, so it never imports them.

correction_saved(line_id): a correction was committed on the line. ml connects its
retraining-policy check to it (ml/receivers.py, connected in MlConfig.ready).
"""

from django.dispatch import Signal

correction_saved = Signal()
