// The node types of the catalogue, grouped by category. Drag one onto the canvas, or
// click it to add it in the middle of the view.
import type { NodeType } from "../types";

export const DRAG_TYPE = "application/x-datamate-node-type";
const CATEGORY_ORDER = ["data", "logic", "composition"];

function categoryTitle(category: string): string {
  return category.charAt(0).toUpperCase() + category.slice(1);
}

export function Palette({ types, onAdd }: { types: NodeType[]; onAdd: (typeKey: string) => void }) {
  const categories = [...new Set(types.map((t) => t.category))].sort(
    (a, b) => (CATEGORY_ORDER.indexOf(a) + 1 || 99) - (CATEGORY_ORDER.indexOf(b) + 1 || 99),
  );
  return (
    <aside className="dm-palette" aria-label="Node types">
      {categories.map((category) => (
        <section key={category} className={`dm-palette-group category-${category}`}>
          <h3>{categoryTitle(category)}</h3>
          {types
            .filter((t) => t.category === category)
            .map((nodeType) => (
              <button
                key={nodeType.key}
                type="button"
                className="dm-palette-item"
                draggable
                data-type={nodeType.key}
                title={`${nodeType.description}\nDrag onto the canvas, or click to add.`}
                onDragStart={(event) => {
                  event.dataTransfer.setData(DRAG_TYPE, nodeType.key);
                  event.dataTransfer.effectAllowed = "move";
                }}
                onClick={() => onAdd(nodeType.key)}
              >
                {nodeType.label}
              </button>
            ))}
        </section>
      ))}
    </aside>
  );
}
