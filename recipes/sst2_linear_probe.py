"""SST-2 sentiment, linear probe on MiniLM: the encoder frozen, only the classification head trained (baseline)."""

from zoo import LinearProbe, Recipe, TrainArgs

# The floor of the method table: how much sentiment the frozen MiniLM features already hold. With ~149k
# trainable parameters (BERT's pooler and the classifier) it needs a higher learning rate than the adapters,
# and it cannot overfit 67k sentences in one pass: 1 epoch = 4,210 steps of 16.
recipe = Recipe(
    name="sst2-linear-probe",
    base_model="sentence-transformers/all-MiniLM-L6-v2",
    task="glue/sst2",
    method=LinearProbe(),
    train=TrainArgs(learning_rate=2e-3, epochs=1, batch_size=16, max_length=64),
)
