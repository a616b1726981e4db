// The cases on one page of the doctors' board, one card each, rendered in the browser from a list
// that the server sends as a prop. Cards are keyed by examination id, so when the list changes Vue
// keeps the DOM node of every case that stays, and a press on its Accept button is not lost.
// Pressing Accept emits "accept" with the examination id.

export default {
  template: `
    <div class="column no-wrap w-full gap-3">
      <q-card v-for="item in cases" :key="item.id" :data-case="item.id"
              class="nicegui-card w-full items-center justify-between no-wrap" style="flex-direction: row">
        <div class="min-w-0">
          <div class="row items-center gap-2 text-subtitle1 text-weight-medium">
            <span v-if="item.urgent" v-html="urgentbadge"></span>
            <span>{{ item.title }}</span>
          </div>
          <div class="text-body2 text-grey-8 break-words">{{ item.question }}</div>
          <span class="text-caption">{{ item.waiting }}</span>
          <span :class="'text-caption q-ml-xs ' + item.due_class">{{ item.due }}</span>
        </div>
        <q-btn color="primary" icon="assignment_ind" :label="acceptlabel" class="shrink-0"
               :aria-label="acceptlabel + ': ' + item.title" @click="$emit('accept', item.id)" />
      </q-card>
    </div>
  `,
  props: {
    cases: { type: Array, default: () => [] },
    acceptlabel: String,
    urgentbadge: String,
  },
};
